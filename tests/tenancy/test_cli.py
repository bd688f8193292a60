"""The tenancy commands as a user types them: the `hyac` CLI as a subprocess against a
real agent, with the owner's local flow and a logged-in profile of a tenant admin."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import start_agent
from tests.tenancy.conftest import agent_env


def hyac(*args: str, input: str | None = None, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hyac_cli", *args], capture_output=True, text=True, timeout=60,
        input=input, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
    )


def ok(*args: str, **kwargs: object) -> str:
    result = hyac(*args, **kwargs)  # type: ignore[arg-type]
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_tenancy_through_the_cli(isolation: Path) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    running = start_agent(Path(os.environ["HYAC_DATA_DIR"]), "--sandbox", "bwrap", env=agent_env())
    try:
        # the owner, through the local agent with no login step
        ok("tenant", "create", "acme")
        assert "acme" in ok("tenant", "ls")
        ok("user", "add", "ada", "--role", "admin", "--tenant", "acme")
        ok("user", "add", "vic", "--role", "viewer", "--tenant", "acme")
        assert "vic" in ok("user", "ls", "--tenant", "acme")
        token = ok("token", "create", "--user", "ada", "--tenant", "acme").strip()
        assert token.startswith("hyac_u_")
        assert token not in ok("token", "ls")

        # ada logs in with a profile; commands then default to its agent and tenant
        ok("login", running.url, "--token", token, "--profile", "work")
        config = Path(os.environ["HYAC_CONFIG_DIR"]) / "config.toml"
        assert config.stat().st_mode & 0o777 == 0o600
        assert "* " in ok("profile", "ls") and "work" in ok("profile", "ls")
        ok("secret", "set", "API_KEY", input="very-secret-value\n")
        ok("secret", "set", "OTHER=second-value")
        listed = ok("secret", "ls")
        assert "API_KEY" in listed and "very-secret-value" not in listed
        assert json.loads(ok("secret", "ls", "--json")) == ["API_KEY", "OTHER"]
        ok("secret", "rm", "OTHER")
        ok("env", "set", "REGION=eu", "MODE=prod")
        assert json.loads(ok("env", "ls", "--json")) == {"MODE": "prod", "REGION": "eu"}
        ok("env", "rm", "MODE")
        ok("quota", "set", "executions_per_minute=100", "memory=128Mi")
        shown = json.loads(ok("quota", "show", "--json"))["quotas"]
        assert shown["executions_per_minute"]["limit"] == 100
        assert "128.0Mi" in ok("quota", "show")
        ok("user", "role", "vic", "developer")
        denied = hyac("tenant", "create", "mine")
        assert denied.returncode == 1 and "owner" in denied.stderr and "Traceback" not in denied.stderr
        other = hyac("secret", "ls", "--tenant", "default")
        assert other.returncode == 1 and "no access" in other.stderr
        # a new project of ada's is in her profile's tenant, so deploy works at once
        project = isolation / "ada-project"
        ok("init", str(project))
        assert 'tenant = "acme"' in (project / "hyac.toml").read_text()
        deployed = subprocess.run(
            [sys.executable, "-m", "hyac_cli", "deploy"], cwd=project, capture_output=True,
            text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"},
        )
        assert deployed.returncode == 0 and "deployed" in deployed.stdout, deployed.stderr
        ok("init", str(isolation / "other-project"), "--tenant", "elsewhere")
        assert 'tenant = "elsewhere"' in (isolation / "other-project" / "hyac.toml").read_text()
        log = json.loads(ok("audit", "--json"))
        assert {"secret.set", "secret.rm", "env.set", "quota.set", "user.set"} <= {r["action"] for r in log}
        assert all(r["actor"] == "ada" and r["actor_kind"] == "user"
                   for r in log if r["action"].startswith(("secret", "env")))
        assert "very-secret-value" not in json.dumps(log)

        # back to the local agent: the owner again
        ok("profile", "use", "local")
        token_id = json.loads(ok("token", "ls", "--json"))[0]["id"]
        ok("token", "revoke", token_id)
        refused = hyac("secret", "ls", env={"HYAC_PROFILE": "work"})
        assert refused.returncode == 1 and "revoked" in refused.stderr
        table = ok("audit", "--all")
        assert "owner" in table and "user:usr_" in table  # the principal column: kind and id
        ok("tenant", "rm", "acme", "--yes")
        assert "acme" not in ok("tenant", "ls")
    finally:
        running.kill(signal.SIGTERM)
