"""Error codes: one class each in hyac_common/errors.py, read back by ``from_json``, and
the table in docs/api.md generated from them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hyac_common import errors

REPO = Path(__file__).resolve().parents[2]


def test_docs_table_of_codes_is_the_classes() -> None:
    document = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    assert errors.with_table(document) == document, (
        "docs/api.md's table of error codes differs from hyac_common/errors.py: "
        "run .venv/bin/python scripts/error_codes.py"
    )
    for cls in errors.BY_CODE.values():
        assert f"| `{cls.code}` |" in document


def test_every_error_code_is_declared_in_hyac_common() -> None:
    """No error class elsewhere says a code of its own (one that only narrows an
    ``except`` and keeps its base's code adds no word)."""
    names = {cls.__name__ for cls in errors.BY_CODE.values()}
    elsewhere = []
    for package in ("hyac_agent", "hyac_cli"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.ClassDef):
                    continue
                bases = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "")
                         for b in node.bases}
                says = {target.id for statement in node.body if isinstance(statement, ast.Assign)
                        for target in statement.targets if isinstance(target, ast.Name)}
                if bases & names and says & {"code", "status", "exit_code"}:
                    elsewhere.append(f"{path.relative_to(REPO)}: {node.name}")
    assert elsewhere == []


def test_every_code_has_one_class() -> None:
    classes = [value for value in vars(errors).values()
               if isinstance(value, type) and issubclass(value, errors.HyacError)]
    assert sorted(cls.code for cls in classes) == sorted(errors.BY_CODE)
    assert {"internal", "db_error", "invalid_input", "function_error"} <= set(errors.BY_CODE)
    assert "invalid_request" not in errors.BY_CODE  # 422 answers invalid_input


@pytest.mark.parametrize("cls", [c for c in errors.BY_CODE.values() if not c.local])
def test_from_json_gives_back_the_class_the_agent_raised(cls: type[errors.HyacError]) -> None:
    sent = cls("it went wrong", request_id="req_1")
    got = errors.from_json(sent.to_json(), sent.status)
    assert type(got) is cls
    assert (got.code, got.message, got.status, got.details) == (
        cls.code, "it went wrong", cls.status, {"request_id": "req_1"}
    )
    assert got.exit_code == cls.exit_code


def test_from_json_takes_the_error_object_alone_and_keeps_the_status() -> None:
    got = errors.from_json({"code": "quota_exceeded", "message": "m", "quota": "memory"}, 413)
    assert isinstance(got, errors.QuotaExceeded)
    assert got.status == 413 and got.details == {"quota": "memory"}


def test_an_unknown_code_takes_the_class_of_its_status_and_keeps_its_code() -> None:
    got = errors.from_json({"error": {"code": "brand_new", "message": "m"}}, 404)
    assert type(got) is errors.NotFound and got.code == "brand_new"
    assert type(errors.from_json({"error": {"code": "x", "message": "m"}}, 418)) is errors.HyacError
    assert type(errors.from_json({"error": {"message": "m"}}, 504)) is errors.FunctionTimeout


def test_the_cli_codes_are_never_read_from_an_answer() -> None:
    got = errors.from_json({"error": {"code": "agent_unreachable", "message": "m"}}, 500)
    assert type(got) is errors.HyacError and got.code == "agent_unreachable"


def test_invalid_input_with_a_server_status_is_no_mistake_of_the_caller() -> None:
    got = errors.from_json({"error": {"code": "invalid_input", "message": "m"}}, 500)
    assert type(got) is errors.HyacError and got.exit_code == 1
