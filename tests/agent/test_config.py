"""hyac_agent/config.py: every HYAC_* setting is read and checked in one place, and a
value that cannot work stops ``hyac-agent serve`` with one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hyac_agent.config import AgentConfig


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No HYAC_* setting but those a test gives."""
    for name in list(os.environ):
        if name.startswith("HYAC_") and name != "HYAC_DATA_DIR":
            monkeypatch.delenv(name)
    return monkeypatch


def _serve(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """``hyac-agent serve`` with these settings only (no --port: HYAC_PORT is one of them)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("HYAC_")}
    return subprocess.run(
        [sys.executable, "-m", "hyac_agent", "serve", "--insecure-no-sandbox"],
        env={**env, "HYAC_DATA_DIR": str(tmp_path / "data"), **settings},
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize(("setting", "value", "said"), [
    ("HYAC_PORT", "abc", "HYAC_PORT must be a whole number, not 'abc'"),
    ("HYAC_PORT", "70000", "HYAC_PORT must be at most 65535, not '70000'"),
    ("HYAC_SHUTDOWN_GRACE", "-1", "HYAC_SHUTDOWN_GRACE must be at least 0, not '-1'"),
    ("HYAC_WORKER_IDLE_TIMEOUT", "soon", "HYAC_WORKER_IDLE_TIMEOUT must be a number, not 'soon'"),
    ("HYAC_CALLBACK_ALLOW_CIDRS", "10.0.0.0/8, 10.0.0.0/33",
     "HYAC_CALLBACK_ALLOW_CIDRS: '10.0.0.0/33' is not a CIDR"),
    ("HYAC_METRICS_ALLOW", "127.0.0.1,localhost",
     "HYAC_METRICS_ALLOW: 'localhost' is not an address or CIDR range"),
    ("HYAC_POOL_MIN_WARM", "default/hello", "HYAC_POOL_MIN_WARM: 'default/hello' is not tenant/function=N"),
    ("HYAC_TASK_LEASE", "0.5", "HYAC_TASK_LEASE must be at least 1, not '0.5'"),
    ("HYAC_TASK_CONCURRENCY", "0", "HYAC_TASK_CONCURRENCY must be at least 1, not '0'"),
    ("HYAC_QUEUE", "rabbit", "HYAC_QUEUE must be one of embedded, celery, not 'rabbit'"),
    ("HYAC_LOG_RETENTION_DAYS", "0", "HYAC_LOG_RETENTION_DAYS must be positive, not '0'"),
    ("HYAC_SANDBOX_CPUS", "-2", "HYAC_SANDBOX_CPUS must be positive, not '-2'"),
    ("HYAC_DEPS_ALLOW_DIRECT_URLS", "perhaps",
     "HYAC_DEPS_ALLOW_DIRECT_URLS must be 1 or 0 (true or false), not 'perhaps'"),
    ("HYAC_SMTP_URL", "http://mail.example.com", "HYAC_SMTP_URL must start with smtp:// or smtps://"),
])
def test_a_bad_setting_stops_serve_with_one_line(
    tmp_path: Path, setting: str, value: str, said: str
) -> None:
    # Each case also sets a free port (0) unless HYAC_PORT is the bad one, so a value
    # that were wrongly accepted would start an agent rather than collide on 8040.
    result = _serve(tmp_path, **{"HYAC_PORT": "0", setting: value})
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [f"Error: {said}"], result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was made


def test_each_bad_setting_is_named_on_the_one_line(tmp_path: Path) -> None:
    result = _serve(tmp_path, HYAC_PORT="x", HYAC_SHUTDOWN_GRACE="-5")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: HYAC_PORT must be a whole number, not 'x'; "
        "HYAC_SHUTDOWN_GRACE must be at least 0, not '-5'"
    ]


def test_a_bad_command_line_value_is_refused_as_well(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hyac_agent", "serve", "--port", "99999", "--insecure-no-sandbox"],
        env={**os.environ, "HYAC_DATA_DIR": str(tmp_path / "data")},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["Error: HYAC_PORT must be at most 65535"]


def test_a_bad_worker_log_level_is_refused_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hyac_agent", "worker", "--loglevel", "loud"],
        env={**os.environ, "HYAC_DATA_DIR": str(tmp_path / "data"), "HYAC_QUEUE": "celery"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: --loglevel: 'loud' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"]
    assert not (tmp_path / "data").exists()  # refused before anything was made


def test_defaults_are_the_documented_ones(environ: pytest.MonkeyPatch) -> None:
    config = AgentConfig()
    assert (config.host, config.port, config.sandbox) == ("127.0.0.1", 8040, "auto")
    assert config.shutdown_grace == 10.0 and config.worker_idle_timeout == 300.0
    assert config.max_body_bytes == 6 * 1024 * 1024 and config.agent_threads == 32
    assert config.pool_runtimes == [f"python{sys.version_info.major}.{sys.version_info.minor}"]
    assert config.deps_dir == config.data_dir / "deps" and not config.deps_allow_direct_urls
    tasks = config.tasks
    assert (tasks.engine, tasks.concurrency, tasks.lease, tasks.callback_allow_cidrs) == (
        "embedded", 4, 30.0, [])


def test_values_are_read_as_they_always_were(environ: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environ.setenv("HYAC_PORT", "")  # empty: the default
    environ.setenv("HYAC_POOL_RUNTIMES", "")  # an empty list: nothing kept warm
    environ.setenv("HYAC_POOL_MIN_WARM", "a/b=2, c/d=0")
    environ.setenv("HYAC_METRICS_ALLOW", "10.0.0.0/8, 127.0.0.1")
    environ.setenv("HYAC_QUEUE", " Celery ")
    environ.setenv("HYAC_TASK_LEASE", "6")
    environ.setenv("HYAC_DEPS_DIR", str(tmp_path / "deps"))
    environ.setenv("HYAC_DEPS_ALLOW_DIRECT_URLS", "1")
    config = AgentConfig()
    assert config.port == 8040 and config.pool_runtimes == []
    assert config.pool_min_warm == {"a/b": 2, "c/d": 0}
    assert config.metrics_allow == ["10.0.0.0/8", "127.0.0.1"]
    assert config.deps_dir == tmp_path / "deps" and config.deps_allow_direct_urls
    assert config.tasks.engine == "celery" and config.tasks.heartbeat == 1.0
    environ.setenv("HYAC_TASK_LEASE", "1.5")
    assert AgentConfig().tasks.heartbeat == 0.5  # a third of the lease at most


def test_the_command_line_wins_and_insecure_mode_is_never_read_from_the_environment(
    environ: pytest.MonkeyPatch,
) -> None:
    environ.setenv("HYAC_PORT", "9000")
    environ.setenv("HYAC_INSECURE_NO_SANDBOX", "1")
    assert AgentConfig().port == 9000
    assert AgentConfig(port=9100).port == 9100
    assert AgentConfig().insecure_no_sandbox is False
    assert AgentConfig(insecure_no_sandbox=True).insecure_no_sandbox is True
