"""``hyac lsp``: a language server (LSP over stdio) for Hyac function files.

Built on pygls; every answer comes from :mod:`hyac_cli.completion`, which runs jedi
on the source behind the runtime's shim, so ``context`` needs no import. It offers
completion (with the tenant's function and env names inside strings), hover, signature
help, go-to-definition (into the project's ``typings/`` stubs) and diagnostics: syntax
errors, unknown ``context`` members and a missing or misshapen ``main``.

LSP lines and characters are 0-based; :mod:`hyac_cli.completion` takes jedi's 1-based
lines. The conversion happens here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from hyac_cli import __version__
from hyac_cli.completion import Completion, Problem, Workspace

if TYPE_CHECKING:
    from pygls.workspace import TextDocument

SOURCE = "hyac"
_KINDS = {
    "module": lsp.CompletionItemKind.Module,
    "class": lsp.CompletionItemKind.Class,
    "instance": lsp.CompletionItemKind.Field,
    "function": lsp.CompletionItemKind.Method,
    "param": lsp.CompletionItemKind.Variable,
    "path": lsp.CompletionItemKind.File,
    "keyword": lsp.CompletionItemKind.Keyword,
    "property": lsp.CompletionItemKind.Property,
    "statement": lsp.CompletionItemKind.Variable,
    "string": lsp.CompletionItemKind.Value,
}


class HyacLanguageServer(LanguageServer):
    """Keeps one :class:`Workspace` per project root (stubs are read once per project)."""

    def __init__(self) -> None:
        super().__init__(SOURCE, __version__)
        self._workspaces: dict[Path | None, Workspace] = {}

    def workspace_for(self, path: Path) -> Workspace:
        from hyac_cli.manifest import find_project_root

        root = find_project_root(path.parent)
        if root not in self._workspaces:
            self._workspaces[root] = Workspace(root)
        return self._workspaces[root]

    def forget_stubs(self) -> None:
        """A file of typings/ or hyac.toml changed: read the stubs again next time."""
        self._workspaces.clear()


server = HyacLanguageServer()


def _document(ls: HyacLanguageServer, uri: str) -> tuple[TextDocument, Path, Workspace]:
    document = ls.workspace.get_text_document(uri)
    path = Path(to_fs_path(uri) or document.path)
    return document, path, ls.workspace_for(path)


def _position(document: TextDocument, position: lsp.Position) -> tuple[int, int]:
    """LSP (0-based line, UTF-16 column) → jedi (1-based line, code-point column)."""
    try:
        found = document.position_codec.position_from_client_units(document.lines, position)
    except Exception:  # an out-of-range position: let jedi clamp it
        return position.line + 1, position.character
    return found.line + 1, found.character


def _range(line: int, column: int, end_line: int, end_column: int) -> lsp.Range:
    return lsp.Range(
        start=lsp.Position(line=max(line - 1, 0), character=column),
        end=lsp.Position(line=max(end_line - 1, 0), character=end_column),
    )


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: HyacLanguageServer, params: lsp.DidOpenTextDocumentParams) -> None:
    publish(ls, params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: HyacLanguageServer, params: lsp.DidChangeTextDocumentParams) -> None:
    publish(ls, params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: HyacLanguageServer, params: lsp.DidSaveTextDocumentParams) -> None:
    publish(ls, params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: HyacLanguageServer, params: lsp.DidCloseTextDocumentParams) -> None:
    ls.text_document_publish_diagnostics(
        lsp.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
    )


@server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched_files(
    ls: HyacLanguageServer, params: lsp.DidChangeWatchedFilesParams
) -> None:
    ls.forget_stubs()


def publish(ls: HyacLanguageServer, uri: str) -> None:
    document, path, workspace = _document(ls, uri)
    problems = workspace.diagnostics(document.source, path)
    ls.text_document_publish_diagnostics(
        lsp.PublishDiagnosticsParams(
            uri=uri, version=document.version,
            diagnostics=[_diagnostic(problem) for problem in problems],
        )
    )


def _diagnostic(problem: Problem) -> lsp.Diagnostic:
    severity = (lsp.DiagnosticSeverity.Error if problem.severity == "error"
                else lsp.DiagnosticSeverity.Warning)
    return lsp.Diagnostic(
        range=_range(problem.line, problem.column, problem.end_line, problem.end_column),
        message=problem.message, severity=severity, source=SOURCE,
    )


@server.feature(
    lsp.TEXT_DOCUMENT_COMPLETION,
    lsp.CompletionOptions(trigger_characters=[".", "[", "(", '"', "'"]),
)
def completion(ls: HyacLanguageServer, params: lsp.CompletionParams) -> lsp.CompletionList:
    document, path, workspace = _document(ls, params.text_document.uri)
    line, column = _position(document, params.position)
    items = workspace.complete(document.source, path, line, column)
    return lsp.CompletionList(
        is_incomplete=False,
        items=[_item(item, params.position, index) for index, item in enumerate(items)],
    )


def _item(item: Completion, position: lsp.Position, index: int) -> lsp.CompletionItem:
    edit = None
    if item.replace and item.insert is not None:
        start = lsp.Position(line=position.line, character=max(position.character - item.replace, 0))
        edit = lsp.TextEdit(range=lsp.Range(start=start, end=position), new_text=item.insert)
    return lsp.CompletionItem(
        label=item.name,
        kind=_KINDS.get(item.type, lsp.CompletionItemKind.Text),
        detail=item.description,
        sort_text=f"{index:05d}",  # keep jedi's order
        text_edit=edit,
    )


@server.feature(lsp.COMPLETION_ITEM_RESOLVE)
def completion_resolve(ls: HyacLanguageServer, item: lsp.CompletionItem) -> lsp.CompletionItem:
    return item


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
def hover(ls: HyacLanguageServer, params: lsp.HoverParams) -> lsp.Hover | None:
    document, path, workspace = _document(ls, params.text_document.uri)
    line, column = _position(document, params.position)
    text = workspace.hover(document.source, path, line, column)
    if text is None:
        return None
    return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text))


@server.feature(
    lsp.TEXT_DOCUMENT_SIGNATURE_HELP,
    lsp.SignatureHelpOptions(trigger_characters=["(", ","], retrigger_characters=[","]),
)
def signature_help(
    ls: HyacLanguageServer, params: lsp.SignatureHelpParams
) -> lsp.SignatureHelp | None:
    document, path, workspace = _document(ls, params.text_document.uri)
    line, column = _position(document, params.position)
    found = workspace.signatures(document.source, path, line, column)
    if not found:
        return None
    return lsp.SignatureHelp(
        signatures=[
            lsp.SignatureInformation(
                label=sig.label,
                documentation=lsp.MarkupContent(kind=lsp.MarkupKind.PlainText, value=sig.doc),
                parameters=[lsp.ParameterInformation(label=p) for p in sig.parameters],
            )
            for sig in found
        ],
        active_signature=0,
        active_parameter=found[0].active,
    )


@server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
def definition(ls: HyacLanguageServer, params: lsp.DefinitionParams) -> list[lsp.Location]:
    document, path, workspace = _document(ls, params.text_document.uri)
    line, column = _position(document, params.position)
    return [
        lsp.Location(
            uri=from_fs_path(str(found.path)) or found.path.as_uri(),
            range=_range(found.line, found.column, found.line, found.column),
        )
        for found in workspace.definitions(document.source, path, line, column)
    ]


def serve(stdin: Any = None, stdout: Any = None) -> None:
    """Serve one editor session over stdin/stdout until it says ``exit``."""
    server.start_io(stdin, stdout)
