"""A real agent: deploys with dependencies are scanned, a blocking policy refuses one
naming the advisory and its fix, imports rescan the active versions, and the CLI shows
it all (`hyac deploy`, `hyac scan`, `hyac scan-policy`, `hyac sbom`)."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RunningAgent, current_runtime
from tests.vulns.conftest import FIXTURES


def _pypi_unreachable() -> str | None:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError as exc:
        return f"PyPI is unreachable ({exc}): dependency installs cannot be tested"
    return None


_REASON = _pypi_unreachable()
pytestmark = [pytest.mark.skipif(_REASON is not None, reason=_REASON or ""), pytest.mark.network]

SOURCE = "import requests\ndef main(context):\n    return {'requests': requests.__version__}\n"


def hyac(agent: RunningAgent, *args: str, cwd: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hyac_cli", *args], capture_output=True, text=True, timeout=300,
        cwd=cwd, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "HYAC_URL": agent.url,
                      "HYAC_TOKEN": agent.token})


def vulndb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hyac_agent", "vulndb", *args],
                          capture_output=True, text=True, timeout=120)


def put(agent: RunningAgent, name: str, source: str, requirements: list[str]):  # type: ignore[no-untyped-def]
    entry = f"functions/{name}.py"
    body = {"entry": entry, "files_b64": {entry: base64.b64encode(source.encode()).decode()},
            "config": {"runtime": current_runtime(), "requirements": requirements}}
    with agent.client() as client:
        return client.put(f"/v1/functions/{name}", json=body)


def scan_of(agent: RunningAgent, name: str, tenant: str | None = None):  # type: ignore[no-untyped-def]
    with agent.client(tenant) as client:
        return client.get(f"/v1/functions/{name}/scan")


def advisories(report: dict, package: str) -> dict[str, str | None]:
    found = next(p for p in report["result"]["packages"] if p["name"] == package)
    return {a["id"]: a["fixed"] for a in found["advisories"]}


def test_deploys_are_scanned_blocked_rescanned_and_described(
        agent: RunningAgent, tmp_path: Path) -> None:
    # No advisories imported yet: the deploy goes ahead (warn), and nothing is "clean".
    first = put(agent, "fetch", SOURCE, ["requests==2.19.0"])
    assert first.status_code == 201, first.text
    report = scan_of(agent, "fetch").json()
    assert report["result"]["status"] == "unknown" and report["blocked"] is False
    assert {p["status"] for p in report["result"]["packages"]} == {"unknown"}

    # Importing advisories rescans the active version: its findings are new.
    imported = vulndb("import", str(FIXTURES / "PyPI"))
    assert imported.returncode == 0, imported.stderr
    assert "new findings: default/fetch v1: GHSA-" in imported.stdout
    report = scan_of(agent, "fetch").json()
    assert report["result"]["status"] == "vulnerable"
    assert advisories(report, "requests")["GHSA-x84v-xcm2-53pg"] == "2.20.0"
    urllib3 = next(p for p in report["result"]["packages"] if p["name"] == "urllib3")
    assert urllib3["version"].startswith("1.23")  # what requests 2.19.0 pins urllib3 to
    assert advisories(report, "urllib3")["GHSA-mh33-7rrq-662w"] == "1.24.2"
    assert "GHSA-8r8j-xvfj-36f9" not in advisories(report, "urllib3")  # fixed in 1.23
    warned = hyac(agent, "scan")
    assert warned.returncode == 0, warned.stderr
    assert "fetch v1  vulnerable" in warned.stdout and "GHSA-x84v-xcm2-53pg" in warned.stdout

    # Block at high: a new version is refused with the advisory and its fix; v1 serves.
    policy = hyac(agent, "scan-policy", "block:high", "--json")
    assert policy.returncode == 0, policy.stderr
    assert json.loads(policy.stdout) == {"mode": "block", "severity": "high",
                                         "unknown": "allow", "inherited": False}
    refused = put(agent, "fetch", SOURCE + "# v2\n", ["requests==2.19.0"])
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "vulnerable_dependencies"
    assert ("requests 2.19.0 has GHSA-x84v-xcm2-53pg (CVE-2018-18074), high: fixed in 2.20.0"
            in error["message"])
    assert {"id": "GHSA-x84v-xcm2-53pg", "package": "requests", "version": "2.19.0",
            "severity": "high", "fixed": "2.20.0"} in error["advisories"]
    with agent.client() as client:
        summary = client.get("/v1/functions/fetch").json()
    assert summary["active_version"] == 1 and summary["versions"] == 1
    served = agent.invoke("fetch")
    assert served.status_code == 200 and served.json()["ok"], served.text
    assert json.loads(base64.b64decode(served.json()["body_b64"])) == {"requests": "2.19.0"}
    blocked = hyac(agent, "scan", "--json")
    assert blocked.returncode == 1
    assert json.loads(blocked.stdout)[0]["blocked"] is True

    # Refused before anything is installed: exact pins before resolving (the unknown
    # package beside the pin is never looked up), a range after resolving; no
    # environment is built for either.
    envs = agent.data_dir / "deps" / "envs"
    built = sorted(p.name for p in envs.iterdir())
    pinned = put(agent, "pinned", SOURCE, ["urllib3==1.24.1", "hyac-no-such-package-zz==1.0"])
    assert pinned.status_code == 422, pinned.text
    assert pinned.json()["error"]["code"] == "vulnerable_dependencies"
    assert "urllib3 1.24.1 has GHSA-mh33-7rrq-662w" in pinned.json()["error"]["message"]
    ranged = put(agent, "ranged", SOURCE, ["requests>=2.19.1,<2.20"])
    assert ranged.status_code == 422, ranged.text
    assert "requests 2.19.1 has GHSA-x84v-xcm2-53pg" in ranged.json()["error"]["message"]
    assert sorted(p.name for p in envs.iterdir()) == built
    with agent.client() as client:
        assert client.get("/v1/functions/pinned").status_code == 404

    # `hyac deploy` says why, in one line, and exits non-zero.
    project = tmp_path / "proj"
    (project / "functions").mkdir(parents=True)
    (project / "functions" / "fetch.py").write_text(SOURCE + "# v3\n")
    (project / "hyac.toml").write_text(
        f'[project]\nname = "proj"\nruntime = "{current_runtime()}"\n\n'
        '[functions.fetch]\nrequirements = ["requests==2.19.0"]\n')
    deploy = hyac(agent, "deploy", "--force", cwd=project)
    assert deploy.returncode != 0
    assert "GHSA-x84v-xcm2-53pg" in deploy.stderr and "Traceback" not in deploy.stderr
    local = hyac(agent, "scan", "--local", "--json", cwd=project)
    assert local.returncode == 1, local.stderr
    assert json.loads(local.stdout)[0]["function"] == "fetch"

    # Back to warn: `hyac deploy` deploys and lists the findings.
    assert hyac(agent, "scan-policy", "warn").returncode == 0
    deploy = hyac(agent, "deploy", "--force", cwd=project)
    assert deploy.returncode == 0, deploy.stderr
    assert "fetch v2  vulnerable" in deploy.stdout and "GHSA-x84v-xcm2-53pg" in deploy.stdout

    # A later advisory reaches the active version (v2) as a new finding.
    later = vulndb("import", str(FIXTURES / "later"), "--json")
    assert json.loads(later.stdout)["rescanned_with_new_findings"] == [
        "default/fetch v2: GHSA-v845-jxx5-vc9f"]
    assert scan_of(agent, "fetch").json()["result"]["new"] == ["GHSA-v845-jxx5-vc9f"]
    audit = hyac(agent, "audit", "--json")
    assert audit.returncode == 0, audit.stderr
    found = {r["target"] for r in json.loads(audit.stdout)
             if r["action"] == "vulnerabilities_found" and r["tenant"] == "default"}
    assert "fetch v2: GHSA-v845-jxx5-vc9f" in found  # and the first import's, for v1
    assert any(t.startswith("fetch v1: ") and "GHSA-x84v-xcm2-53pg" in t for t in found)

    # The SBOM of v1 names the function, its packages and their advisories.
    sbom = hyac(agent, "sbom", "fetch", "--version", "1")
    assert sbom.returncode == 0, sbom.stderr
    bom = json.loads(sbom.stdout)
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["metadata"]["component"]["bom-ref"] == "function:default/fetch@v1"
    assert "pkg:pypi/requests@2.19.0" in {c["purl"] for c in bom["components"]}
    assert any(v["id"] == "GHSA-x84v-xcm2-53pg" for v in bom["vulnerabilities"])

    # Another tenant sees none of it.
    assert scan_of(agent, "fetch", tenant="other").status_code == 404
    with agent.client("other") as client:
        assert client.get("/v1/functions/fetch/sbom").status_code == 404
    missing = hyac(agent, "sbom", "nope")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert missing.stderr.strip() == "Error: function 'nope' (version active) not found in tenant 'default'"
