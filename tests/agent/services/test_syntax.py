"""Syntax checks by the runtime's interpreter, in checking processes kept between deploys."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyac_agent.services.syntax import SyntaxChecks
from hyac_common.errors import FunctionSyntaxError, InvalidInput

PYTHON = Path(sys.executable)
GOOD = {"functions/ok.py": b"def main(context):\n    return 1\n", "functions/data.txt": b"(("}


@pytest.fixture
def checks() -> Iterator[SyntaxChecks]:
    checks = SyntaxChecks()
    yield checks
    checks.close()


def idle_pids(checks: SyntaxChecks) -> list[int]:
    return [checker.process.pid for checker in checks._idle.get(PYTHON, [])]


def test_the_first_file_that_does_not_compile_is_named_with_its_line(checks: SyntaxChecks
                                                                      ) -> None:
    checks.check(PYTHON, GOOD)  # only .py files are compiled
    with pytest.raises(FunctionSyntaxError) as raised:
        checks.check(PYTHON, {**GOOD, "functions/zz.py": b"x = 1\ndef f(:\n"})
    assert raised.value.message.startswith("functions/zz.py:2: SyntaxError: ")
    assert raised.value.details == {"path": "functions/zz.py", "line": 2}


def test_a_source_the_compiler_refuses_otherwise_is_invalid_input(checks: SyntaxChecks) -> None:
    with pytest.raises((InvalidInput, FunctionSyntaxError)) as raised:
        checks.check(PYTHON, {"functions/nul.py": b"x = 1\x00\n"})
    assert "null" in raised.value.message
    checks.check(PYTHON, GOOD)  # the checker still answers


def test_one_checking_process_serves_deploy_after_deploy(checks: SyntaxChecks) -> None:
    checks.check(PYTHON, GOOD)
    first = idle_pids(checks)
    with pytest.raises(FunctionSyntaxError):
        checks.check(PYTHON, {"functions/bad.py": b"def f(:\n"})
    checks.check(PYTHON, GOOD)
    assert len(first) == 1 and idle_pids(checks) == first


def test_a_checker_that_died_is_replaced(checks: SyntaxChecks) -> None:
    checks.check(PYTHON, GOOD)
    [checker] = checks._idle[PYTHON]
    checker.process.kill()
    checker.process.wait()
    checks.check(PYTHON, GOOD)
    assert idle_pids(checks) not in ([], [checker.process.pid])
    with pytest.raises(FunctionSyntaxError):
        checks.check(PYTHON, {"functions/bad.py": b"def f(:\n"})


def test_close_stops_the_idle_checkers(checks: SyntaxChecks) -> None:
    checks.check(PYTHON, GOOD)
    [checker] = checks._idle[PYTHON]
    checks.close()
    assert checker.process.poll() is not None
    checks.check(PYTHON, GOOD)  # a late deploy is still checked, by a checker not kept
    assert idle_pids(checks) == []
