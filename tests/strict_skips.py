"""With HYAC_STRICT_SKIPS=1 a skip not listed in tests/allowed_skips.txt fails its test.

A test that skips because its component is missing says so and passes; on a machine
where everything is installed (CI) that would hide a component that silently went away.
Strict mode turns such a skip into a failure that names the reason.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from pathlib import Path

import pytest

ALLOWED = Path(__file__).with_name("allowed_skips.txt")
ENV = "HYAC_STRICT_SKIPS"


def allowed_patterns(path: Path = ALLOWED) -> list[re.Pattern[str]]:
    """The reason patterns of ``path``: ``REGEX -- why`` a line; ``#`` starts a comment."""
    patterns = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        pattern, _, why = line.partition(" -- ")
        if not why.strip():
            raise pytest.UsageError(f"{path.name}:{number}: say why after ' -- ': {line!r}")
        patterns.append(re.compile(pattern.strip()))
    return patterns


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    """The reason of a skip (None for anything else, an expected failure included)."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


class StrictSkips:
    """A pytest plugin: reports of unexpected skips become failures."""

    def __init__(self, patterns: list[re.Pattern[str]]) -> None:
        self.patterns = patterns

    def _check(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        reason = skip_reason(report)
        if reason is None or any(p.search(reason) for p in self.patterns):
            return
        report.outcome = "failed"
        report.longrepr = (
            f"unexpected skip ({ENV}=1): {reason}\n"
            f"install what it needs, or list it in {ALLOWED.name} with the reason it is legitimate"
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        self._check(report)
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self,
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        self._check(report)
        return report
