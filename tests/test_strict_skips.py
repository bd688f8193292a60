"""HYAC_STRICT_SKIPS=1 (CI) fails a skip that tests/allowed_skips.txt does not list."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.strict_skips import allowed_patterns

SUITE = '''
import pytest

def test_listed():
    pytest.skip("ip6-localhost does not resolve here (no /etc/hosts entry)")

def test_unlisted():
    pytest.skip("docker is not installed")

@pytest.fixture
def broker():
    pytest.skip("no Redis here")

def test_unlisted_in_a_fixture(broker):
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_failure():
    assert False

def test_plain():
    pass
'''


def run_suite(tmp_path: Path, strict: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_demo.py").write_text(SUITE)
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_configure  # noqa: F401\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if strict:
        env["HYAC_STRICT_SKIPS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def test_strict_mode_fails_only_the_skips_not_listed(tmp_path: Path) -> None:
    done = run_suite(tmp_path, strict=True)
    assert done.returncode == 1, done.stdout
    summary = done.stdout.splitlines()[-1]
    assert summary.startswith("1 failed, 1 passed, 1 skipped, 1 xfailed, 1 error"), done.stdout
    assert "FAILED test_demo.py::test_unlisted - unexpected skip" in done.stdout
    assert "ERROR test_demo.py::test_unlisted_in_a_fixture - unexpected skip" in done.stdout
    assert "docker is not installed" in done.stdout and "no Redis here" in done.stdout


def test_without_strict_mode_a_skip_is_a_skip(tmp_path: Path) -> None:
    done = run_suite(tmp_path, strict=False)
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1].startswith("1 passed, 3 skipped, 1 xfailed"), done.stdout


def test_every_allowed_skip_says_why(tmp_path: Path) -> None:
    assert len(allowed_patterns()) >= 1
    unexplained = tmp_path / "allowed.txt"
    unexplained.write_text("# a comment\n\nsome reason\n")
    with pytest.raises(pytest.UsageError, match="allowed.txt:3: say why"):
        allowed_patterns(unexplained)
