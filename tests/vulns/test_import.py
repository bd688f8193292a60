"""Importing OSV dumps: files, folders and zips; hostile or broken ones are refused
whole, with one line naming the file, and change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hyac_agent.vulns import VulnService, importer
from hyac_common.errors import AdvisoryRefused
from tests.vulns.conftest import FIXTURES

RECORD = json.loads((FIXTURES / "npm" / "GHSA-p6mc-m468-83gw.json").read_text())


def zipped(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_an_osv_zip_imports_like_the_published_ones(service: VulnService, tmp_path: Path) -> None:
    members = {p.name: p.read_bytes() for p in (FIXTURES / "PyPI").glob("*.json")}
    summary = service.import_path(zipped(tmp_path / "all.zip", members), "osv-PyPI")
    assert summary["advisories"] == len(members) and summary["ecosystems"] == ["PyPI"]
    status = service.status()
    assert status["ecosystems"]["PyPI"]["source"] == "osv-PyPI"
    assert status["ecosystems"]["PyPI"]["advisories"] == len(members)
    # importing again replaces, never duplicates
    service.import_path(tmp_path / "all.zip")
    assert service.status()["advisories"] == len(members)


@pytest.mark.parametrize("name, members, message", [
    ("traversal", {"../../etc/cron.d/x.json": json.dumps(RECORD).encode()}, "outside the archive"),
    ("absolute", {"/etc/x.json": json.dumps(RECORD).encode()}, "outside the archive"),
    ("not-json", {"run.sh": b"#!/bin/sh"}, "not *.json"),
    ("malformed", {"a.json": b"{not json"}, "not JSON"),
    ("wrong-shape", {"a.json": json.dumps({**RECORD, "affected": "lodash"}).encode()},
     "affected: expected a list"),
    ("bad-id", {"a.json": json.dumps({**RECORD, "id": "../x"}).encode()}, "is not an OSV id"),
    ("bad-event", {"a.json": json.dumps({**RECORD, "affected": [{"package": {
        "ecosystem": "npm", "name": "x"}, "ranges": [{"type": "SEMVER", "events": [
            {"introduced": "0", "fixed": "1.0.0"}]}]}]}).encode()}, "each event is one of"),
    ("deep", {"a.json": b"[" * 100000 + b"]" * 100000}, "not JSON"),
])
def test_hostile_or_broken_zips_are_refused_whole(
        service: VulnService, tmp_path: Path, name: str, members: dict[str, bytes],
        message: str) -> None:
    good = {"good.json": json.dumps(RECORD).encode()}
    archive = zipped(tmp_path / f"{name}.zip", {**good, **members})
    with pytest.raises(AdvisoryRefused, match=message):
        service.import_path(archive)
    assert service.status()["advisories"] == 0  # the good record did not go in either
    assert not (tmp_path / "etc").exists()


def test_oversized_files_and_members_are_refused(
        service: VulnService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "MAX_FILE_BYTES", 4096)
    big = json.dumps({**RECORD, "summary": "x" * 10000}).encode()
    (tmp_path / "big.json").write_bytes(big)
    with pytest.raises(AdvisoryRefused, match="larger than a record file may be"):
        service.import_path(tmp_path / "big.json")
    # a zip bomb: a small archive whose member unpacks past the limit
    with pytest.raises(AdvisoryRefused, match="larger than a record file may be"):
        service.import_path(zipped(tmp_path / "bomb.zip", {"a.json": b" " * 10_000_000}))
    monkeypatch.setattr(importer, "MAX_TOTAL_BYTES", 2000)
    many = {f"{i}.json": json.dumps(RECORD).encode() for i in range(5)}
    with pytest.raises(AdvisoryRefused, match="unpacks to more than"):
        service.import_path(zipped(tmp_path / "many.zip", many))
    assert service.status()["advisories"] == 0


def test_a_folder_is_walked_without_following_links(
        service: VulnService, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps(RECORD))
    dump = tmp_path / "dump"
    dump.mkdir()
    (dump / "linked.json").symlink_to(outside / "secret.json")
    (dump / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(AdvisoryRefused, match="not a regular file or folder"):
        service.import_path(dump / "linked.json")
    assert service.import_path(dump)["advisories"] == 0
    (dump / "broken.json").write_text("[1, 2]")
    with pytest.raises(AdvisoryRefused, match="broken.json\\[0\\]: an OSV record is a JSON object"):
        service.import_path(dump)


def test_vulndb_command_status_import_and_refusal(tmp_path: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    command = [sys.executable, "-m", "hyac_agent", "vulndb"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *args], capture_output=True, text=True, env=env,
                              timeout=120)

    empty = run("status")
    assert empty.returncode == 0 and "every package scans as unknown" in empty.stdout
    done = run("import", str(FIXTURES / "npm"), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["advisories"] == 4
    status = json.loads(run("status", "--json").stdout)
    assert status["ecosystems"]["npm"]["advisories"] == 4 and status["sources"] == ["local"]
    (tmp_path / "bad.json").write_text("{")
    refused = run("import", str(tmp_path / "bad.json"))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "Traceback" not in refused.stderr
    missing = run("import", str(tmp_path / "nope"), "--json")
    assert missing.returncode == 1 and json.loads(missing.stdout)["error"]["code"] == "invalid_advisory"
