// The console editor's CodeMirror 6 setup, bundled into ../static/vendor/codemirror.js by
// scripts/build-editor.sh. The view (static/views/editor.js) passes the callbacks that
// reach /v1/editor; nothing here talks to the network or evaluates code.

import {
  autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap, startCompletion,
} from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { javascript } from "@codemirror/lang-javascript";
import { python } from "@codemirror/lang-python";
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from "@codemirror/language";
import { linter, lintGutter, lintKeymap } from "@codemirror/lint";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { EditorState } from "@codemirror/state";
import {
  EditorView, crosshairCursor, drawSelection, highlightActiveLine, highlightActiveLineGutter,
  hoverTooltip, keymap, lineNumbers, rectangularSelection,
} from "@codemirror/view";

// The position of `pos` as the API counts: 1-based line, 0-based column.
function where(state, pos) {
  const line = state.doc.lineAt(pos);
  return { line: line.number, column: pos - line.from };
}

function offset(state, line, column) {
  const count = state.doc.lines;
  const at = state.doc.line(Math.min(Math.max(line, 1), count));
  return Math.min(at.from + Math.max(column, 0), at.to);
}

// Asks made again by the editor itself (below), in a row, before it waits for a keystroke.
const MAX_ASKS_AGAIN = 3;
// How long after a busy answer the editor asks again.
const BUSY_RETRY_MS = 500;

// `complete(source, line, column)` answers the completion items, null (nothing to show),
// or { busy: true } when the agent could not analyse the source now (ask again soon).
export function createEditor({ parent, doc, language, complete, hover, diagnose, onChange, delay = 400 }) {
  const extensions = [
    lineNumbers(), highlightActiveLineGutter(), history(), drawSelection(),
    EditorState.allowMultipleSelections.of(true), indentOnInput(),
    syntaxHighlighting(defaultHighlightStyle, { fallback: true }), bracketMatching(),
    closeBrackets(), rectangularSelection(), crosshairCursor(), highlightActiveLine(),
    highlightSelectionMatches(), lintGutter(),
    keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap,
      ...completionKeymap, ...lintKeymap, indentWithTab]),
    language === "javascript" ? javascript({ typescript: true }) : python(),
    EditorView.updateListener.of((update) => { if (update.docChanged && onChange) onChange(update.state.doc.toString()); }),
  ];
  if (complete) {
    let askedAgain = 0;
    // CodeMirror asks again by itself when text typed during an ask makes its result stale,
    // but not when the ask gave nothing: the completion then stays pending (an old popup
    // greyed out) until the next keystroke. So the editor asks again, for the text as it
    // is by then: at once when it changed meanwhile, a little later when the agent was busy.
    const askAgain = (view, later) => {
      if (!view || askedAgain >= MAX_ASKS_AGAIN) return;
      askedAgain += 1;
      // after CodeMirror has taken this ask's null (at once, once the promise settles);
      // not into an editor closed meanwhile (another file opened)
      setTimeout(() => { if (view.dom.isConnected) startCompletion(view); }, later ? BUSY_RETRY_MS : 20);
    };
    extensions.push(autocompletion({
      activateOnTyping: true,
      override: [async (context) => {
        const typed = context.state.sliceDoc(Math.max(0, context.pos - 1), context.pos);
        if (!context.explicit && !/[\w."'\[(]/.test(typed)) return null;
        const at = where(context.state, context.pos);
        const items = await complete(context.state.doc.toString(), at.line, at.column);
        if (context.aborted) return null;
        if (!Array.isArray(items)) {
          const changed = context.view && context.view.state.doc !== context.state.doc;
          if ((items && items.busy) || changed) askAgain(context.view, !changed);
          return null;
        }
        askedAgain = 0;
        return {
          from: context.pos,
          filter: false,
          options: items.map((item) => ({
            label: item.label,
            type: item.kind === "statement" ? "variable" : item.kind,
            detail: item.detail,
            info: item.documentation || undefined,
            // insert_text replaces the `replace` characters before the cursor
            apply: (view, _completion, from, to) => {
              const start = Math.max(0, from - (item.replace || 0));
              view.dispatch({ changes: { from: start, to, insert: item.insert_text },
                selection: { anchor: start + item.insert_text.length } });
            },
          })),
        };
      }],
    }));
  }
  if (hover) {
    extensions.push(hoverTooltip(async (view, pos) => {
      const at = where(view.state, pos);
      const found = await hover(view.state.doc.toString(), at.line, at.column);
      if (!found) return null;
      return {
        pos,
        create() {
          const dom = document.createElement("div");
          dom.className = "cm-hyac-hover";
          const code = document.createElement("pre");
          code.textContent = found.signature;
          dom.append(code);
          if (found.documentation) {
            const doc = document.createElement("p");
            doc.textContent = found.documentation;
            dom.append(doc);
          }
          return { dom };
        },
      };
    }));
  }
  if (diagnose) {
    extensions.push(linter(async (view) => {
      const found = await diagnose(view.state.doc.toString());
      return (found || []).map((d) => {
        const from = offset(view.state, d.line, d.column);
        let to = offset(view.state, d.end_line, d.end_column);
        if (to <= from) to = Math.min(from + 1, view.state.doc.length);
        return { from, to, severity: d.severity === "warning" ? "warning" : "error", message: d.message };
      });
    }, { delay }));
  }
  const view = new EditorView({ state: EditorState.create({ doc, extensions }), parent });
  return {
    view,
    text: () => view.state.doc.toString(),
    setText: (text) => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }),
    destroy: () => view.destroy(),
  };
}
