"""Scanning against the fixture database of real advisories: OSV range matching, the
merge of one vulnerability's records, policies, the unknown cases, rescans and SBOMs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hyac_agent.store import SqlStore
from hyac_agent.vulns import VulnService, policy, scan_lock
from hyac_agent.vulns.db import coverage
from hyac_agent.vulns.sbom import cyclonedx
from hyac_agent.vulns.versions import Unorderable, affected, semver_key
from hyac_common.errors import VulnerableDependencies
from hyac_common.wire import FunctionConfig, ScanPolicy
from tests.vulns.conftest import FIXTURES

PIP_LOCK = (
    "requests==2.19.0 \\\n    --hash=sha256:" + "a" * 64 + "\n"
    "urllib3==1.24.1 \\\n    --hash=sha256:" + "b" * 64 + "\n"
    "six==1.16.0 \\\n    --hash=sha256:" + "c" * 64 + "\n"
)


def ids(result, name):  # type: ignore[no-untyped-def]
    package = next(p for p in result.packages if p.name == name)
    return {a.id: (a.severity, a.fixed) for a in package.advisories}


def test_osv_ranges_follow_the_schema_algorithm() -> None:
    entry = {"ranges": [{"type": "ECOSYSTEM", "events": [
        {"introduced": "0"}, {"fixed": "1.0"}, {"introduced": "2.0"}, {"last_affected": "2.4"}]}]}
    assert affected("PyPI", "0.9", entry).fixed == "1.0"  # type: ignore[union-attr]
    assert affected("PyPI", "1.0", entry) is None
    assert affected("PyPI", "1.5", entry) is None
    assert affected("PyPI", "2.4", entry).fixed is None  # type: ignore[union-attr]
    assert affected("PyPI", "2.4.1", entry) is None
    # PEP 440: a pre-release of the fix is still before it; "1.0.0" equals "1.0"
    assert affected("PyPI", "1.0rc1", entry) is not None
    assert affected("PyPI", "1.0.0", entry) is None
    # semver: pre-releases sort before their release, numerically by identifier
    assert semver_key("4.17.19-rc.2") < semver_key("4.17.19-rc.10") < semver_key("4.17.19")
    lodash = {"ranges": [{"type": "SEMVER", "events": [{"introduced": "3.7.0"}, {"fixed": "4.17.19"}]}]}
    assert affected("npm", "4.17.19-rc.1", lodash) is not None
    assert affected("npm", "3.6.9", lodash) is None
    # an explicit versions list counts even without a range, with the next fix
    listed = {"versions": ["1.2.3"], "ranges": [{"type": "GIT", "events": [{"introduced": "abc"}]}]}
    assert affected("npm", "1.2.3", listed).fixed is None  # type: ignore[union-attr]
    with pytest.raises(Unorderable):
        affected("npm", "not-a-version", lodash)


def test_real_advisories_of_old_releases(loaded: VulnService, store: SqlStore) -> None:
    result = scan_lock(store, "PyPI", [("requests", "2.19.0"), ("urllib3", "1.24.1"),
                                       ("six", "1.16.0")])
    assert result.status == "vulnerable" and result.sources == ["local"]
    # GHSA and PYSEC records of CVE-2018-18074 are one finding, under the GHSA id
    assert ids(result, "requests") == {
        "GHSA-x84v-xcm2-53pg": ("high", "2.20.0"),
        "GHSA-j8r2-6x86-q33q": ("moderate", "2.31.0"),
        "GHSA-9wx4-h78v-vm56": ("moderate", "2.32.0"),
    }
    first = next(p for p in result.packages if p.name == "requests").advisories[0]
    assert first.id == "GHSA-x84v-xcm2-53pg"
    assert set(first.aliases) == {"CVE-2018-18074", "PYSEC-2018-28"}
    # CVE-2018-20060 was fixed in 1.23: not reported for 1.24.1
    assert ids(result, "urllib3") == {
        "GHSA-mh33-7rrq-662w": ("high", "1.24.2"),
        "GHSA-r64q-w8jr-g9qp": ("moderate", "1.24.3"),
        "GHSA-wqvq-5m8c-6g24": ("moderate", "1.25.9"),
    }
    assert next(p for p in result.packages if p.name == "six").status == "clean"
    npm = scan_lock(store, "npm", [("lodash", "4.17.15")])
    # CVE-2019-10744 (fixed in 4.17.12) is not reported for 4.17.15
    assert ids(npm, "lodash") == {
        "GHSA-p6mc-m468-83gw": ("high", "4.17.19"),
        "GHSA-35jh-r3h4-6jhm": ("high", "4.17.21"),
        "GHSA-29mw-wpgm-hmr9": ("moderate", "4.17.21"),
    }
    assert scan_lock(store, "npm", [("lodash", "4.17.21")]).status == "clean"
    # names compare the ecosystem's way
    assert ids(scan_lock(store, "PyPI", [("Requests", "2.19.0")]), "requests")


def test_policies_warn_block_and_unknown(loaded: VulnService, store: SqlStore) -> None:
    result = loaded.scan_lock(PIP_LOCK)
    assert policy.reasons(ScanPolicy(mode="warn"), result) == []
    assert policy.reasons(ScanPolicy(mode="block", severity="critical"), result) == []
    with pytest.raises(VulnerableDependencies) as raised:
        policy.enforce(ScanPolicy(mode="block", severity="high"), result)
    message = raised.value.message
    assert "requests 2.19.0 has GHSA-x84v-xcm2-53pg (CVE-2018-18074), high: fixed in 2.20.0" in message
    assert "urllib3 1.24.1 has GHSA-mh33-7rrq-662w" in message
    assert "GHSA-j8r2-6x86-q33q" not in message  # moderate, under the threshold
    assert {"id": "GHSA-x84v-xcm2-53pg", "package": "requests", "version": "2.19.0",
            "severity": "high", "fixed": "2.20.0"} in raised.value.details["advisories"]
    # a tenant's policy replaces the platform default, and a deploy check enforces it
    loaded.set_policy("acme", ScanPolicy(mode="block", severity="high"))
    with pytest.raises(VulnerableDependencies):
        loaded.check_deploy("acme", "fn", PIP_LOCK)
    assert loaded.check_deploy("other", "fn", PIP_LOCK).status == "vulnerable"  # warn
    # unknown blocks only when asked to
    unknown = scan_lock(store, "PyPI", [("six", None)])
    assert unknown.status == "unknown"
    assert policy.reasons(ScanPolicy(mode="block"), unknown) == []
    assert policy.reasons(ScanPolicy(mode="block", unknown="block"), unknown)


def test_platform_default_policy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYAC_VULN_POLICY", "block:moderate")
    monkeypatch.setenv("HYAC_VULN_UNKNOWN", "block")
    assert policy.platform_default() == ScanPolicy(mode="block", severity="moderate",
                                                   unknown="block", inherited=True)
    monkeypatch.setenv("HYAC_VULN_POLICY", "block:severe")
    with pytest.raises(Exception, match="HYAC_VULN_POLICY"):
        policy.platform_default()


def test_never_a_false_clean(service: VulnService, store: SqlStore,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    # nothing imported: unknown, with the reason
    empty = scan_lock(store, "PyPI", [("requests", "2.19.0")])
    assert empty.status == "unknown" and empty.sources == []
    assert "no PyPI advisories" in empty.packages[0].reason
    # an npm import does not vouch for PyPI packages
    service.import_path(FIXTURES / "npm")
    assert scan_lock(store, "PyPI", [("six", "1.16.0")]).status == "unknown"
    # a stale import is unknown too (the age is configurable)
    service.import_path(FIXTURES / "PyPI")
    assert scan_lock(store, "PyPI", [("six", "1.16.0")]).status == "clean"
    with store.engine.begin() as conn:
        conn.execute(coverage.update().values(updated_at=time.time() - 10 * 86400))
    stale = scan_lock(store, "PyPI", [("six", "1.16.0")])
    assert stale.status == "unknown" and "10 days old" in stale.packages[0].reason
    monkeypatch.setenv("HYAC_VULNDB_MAX_AGE_DAYS", "30")
    assert scan_lock(store, "PyPI", [("six", "1.16.0")]).status == "clean"
    assert service.status()["ecosystems"]["PyPI"]["stale"] is False


@contextmanager
def answering(status: int, body: bytes | dict[str, bytes]) -> Iterator[str]:
    """A loopback server answering every request with ``body`` (or ``body[path]``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            data = body if isinstance(body, bytes) else body.get(self.path, b"{}")
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_unreachable_or_silent_online_sources_answer_nothing(
        service: VulnService, store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HYAC_VULNDB_SOURCES", "osv,pypi")
    monkeypatch.setenv("HYAC_VULNDB_OSV_URL", f"http://127.0.0.1:{port}")
    with answering(404, b"Not Found") as pypi:
        monkeypatch.setenv("HYAC_VULNDB_PYPI_URL", pypi)
        result = scan_lock(store, "PyPI", [("requests", "2.19.0")])
    assert result.status == "unknown" and result.sources == []
    assert "osv: the OSV source could not answer" in result.packages[0].reason
    assert "pypi: PyPI answered 404" in result.packages[0].reason
    # a PyPI answer without the vulnerabilities field is no answer either
    with answering(200, b'{"info": {}}') as pypi:
        monkeypatch.setenv("HYAC_VULNDB_SOURCES", "pypi")
        monkeypatch.setenv("HYAC_VULNDB_PYPI_URL", pypi)
        assert scan_lock(store, "PyPI", [("requests", "2.19.0")]).status == "unknown"
    # an OSV mirror that answers is used: the batch names ids, each record is fetched
    record = (FIXTURES / "PyPI" / "GHSA-x84v-xcm2-53pg.json").read_bytes()
    routes = {"/v1/querybatch": b'{"results": [{"vulns": [{"id": "GHSA-x84v-xcm2-53pg"}]}, {}]}',
              "/v1/vulns/GHSA-x84v-xcm2-53pg": record}
    with answering(200, routes) as osv:
        monkeypatch.setenv("HYAC_VULNDB_SOURCES", "osv")
        monkeypatch.setenv("HYAC_VULNDB_OSV_URL", osv)
        mirrored = scan_lock(store, "PyPI", [("requests", "2.19.0"), ("six", "1.16.0")])
    assert mirrored.sources == ["osv"]
    assert ids(mirrored, "requests") == {"GHSA-x84v-xcm2-53pg": ("high", "2.20.0")}
    assert next(p for p in mirrored.packages if p.name == "six").status == "clean"
    # a mirror whose answer does not match the question answers for nothing
    with answering(200, {"/v1/querybatch": b'{"results": []}'}) as osv:
        monkeypatch.setenv("HYAC_VULNDB_OSV_URL", osv)
        assert scan_lock(store, "PyPI", [("requests", "2.19.0")]).status == "unknown"


def test_rescan_after_an_import_records_new_findings(loaded: VulnService, store: SqlStore) -> None:
    config = FunctionConfig(lock=PIP_LOCK)
    store.record_deploy("acme", "fetcher", "d" * 64, "functions/fetcher.py", config)
    first = loaded.report("acme", "fetcher")
    assert first.result is not None and first.result.status == "vulnerable"
    assert "GHSA-v845-jxx5-vc9f" not in ids(first.result, "urllib3")
    summary = loaded.import_path(FIXTURES / "later")
    assert summary["rescanned_with_new_findings"] == ["acme/fetcher v1: GHSA-v845-jxx5-vc9f"]
    stored = loaded.report("acme", "fetcher").result
    assert stored is not None and stored.new == ["GHSA-v845-jxx5-vc9f"]
    assert ids(stored, "urllib3")["GHSA-v845-jxx5-vc9f"] == ("high", "1.26.17")  # CVSS 8.1
    # nothing new the second time
    assert loaded.rescan_active() == []


def test_sbom_is_cyclonedx_with_packages_hashes_and_findings(loaded: VulnService) -> None:
    result = loaded.scan_lock(PIP_LOCK)
    bom = cyclonedx("acme", "fetcher", 3, "e" * 64, 1_700_000_000.0, PIP_LOCK, result)
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    assert bom["metadata"]["component"]["bom-ref"] == "function:acme/fetcher@v3"
    requests = next(c for c in bom["components"] if c["name"] == "requests")
    assert requests["purl"] == "pkg:pypi/requests@2.19.0"
    assert requests["hashes"] == [{"alg": "SHA-256", "content": "a" * 64}]
    assert bom["dependencies"][0]["dependsOn"] == [c["bom-ref"] for c in bom["components"]]
    found = {v["id"]: v for v in bom["vulnerabilities"]}
    assert found["GHSA-x84v-xcm2-53pg"]["affects"] == [{"ref": "pkg:pypi/requests@2.19.0"}]
    assert found["GHSA-x84v-xcm2-53pg"]["recommendation"] == "Upgrade requests to 2.20.0 or later"
    npm_lock = json.dumps({"package.json": {}, "package-lock.json": {"packages": {
        "": {}, "node_modules/@scope/pkg": {"version": "1.0.0", "integrity": "sha512-AAAA"}}}})
    bom = cyclonedx("acme", "js", 1, "f" * 64, 0.0, npm_lock, None)
    assert bom["components"][0]["purl"] == "pkg:npm/%40scope/pkg@1.0.0"


def test_project_files_are_scanned_for_what_they_pin(loaded: VulnService, store: SqlStore) -> None:
    from hyac_agent.vulns import scan_files
    from hyac_agent.vulns.files import pinned_packages

    files = {
        "hyac.toml": b'[project]\nname = "p"\n[functions.f]\nrequirements = ["six==1.16.0"]\n',
        "functions/f/requirements.txt": b"# pins\nrequests[socks]==2.19.0 ; python_version > '3'\n"
                                        b"urllib3>=1.24\n--index-url https://evil.example/\n"
                                        b"pkg @ https://evil.example/p.whl\n",
    }
    assert pinned_packages(files, "python3.12") == (
        "PyPI", [("requests", "2.19.0"), ("six", "1.16.0"), ("urllib3", None)])
    result = scan_files(store, files, "python3.12")
    assert result is not None and result.status == "vulnerable"
    assert {p.name: p.status for p in result.packages} == {
        "requests": "vulnerable", "six": "clean", "urllib3": "unknown"}
    lock = {"packages": {"": {}, "node_modules/lodash": {"version": "4.17.15"}}}
    npm = scan_files(store, {"package-lock.json": json.dumps(lock).encode(),
                             "package.json": b'{"dependencies": {"left-pad": "^1.0.0"}}'}, "node20")
    assert npm is not None and ids(npm, "lodash")["GHSA-p6mc-m468-83gw"] == ("high", "4.17.19")
    assert pinned_packages({"package.json": b'{"dependencies": {"lodash": "4.17.15", "x": "^1"}}'},
                           "deno") == ("npm", [("lodash", "4.17.15"), ("x", None)])
    assert scan_files(store, {"README.md": b"requests==2.19.0"}, "python3.12") is None
    assert pinned_packages({"package.json": b"[not json"}, "node20") == ("npm", [])


def test_a_misconfigured_source_setting_scans_as_unknown(
        loaded: VulnService, store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYAC_VULNDB_SOURCES", "local,nvd")
    result = scan_lock(store, "PyPI", [("six", "1.16.0")])
    assert result.status == "unknown"
    assert "HYAC_VULNDB_SOURCES: unknown source 'nvd'" in result.packages[0].reason
    assert loaded.status()["sources"] == ["misconfigured"]
