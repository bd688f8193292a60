"""Direct-URL archives, fetched and unpacked by the agent itself: capped, hash-checked,
and never written outside their folder."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from hyac_agent.deps import InstallFailed, archives
from hyac_common.errors import DependencyRefused
from tests.deps.loopback import serving, skip_without_tar_filters


def tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


SDIST = tarball({"pkg-1.0/pyproject.toml": b'[build-system]\nrequires = ["flit_core>=3.2"]\n'
                                           b'build-backend = "flit_core.buildapi"\n'})


def test_an_archive_is_fetched_hashed_and_unpacked(tmp_path: Path) -> None:
    with serving(lambda path: SDIST) as (url, requests):
        archive = archives.download(f"{url}/pkg-1.0.tar.gz", tmp_path / "dl")
        assert requests == ["/pkg-1.0.tar.gz"]
        assert archive.sha256 == hashlib.sha256(SDIST).hexdigest()
        with pytest.raises(InstallFailed, match="changed"):
            archives.download(f"{url}/pkg-1.0.tar.gz", tmp_path / "again", "0" * 64)
    if not archives.SAFE_TAR:
        with pytest.raises(InstallFailed) as refused:
            archives.unpack(archive, tmp_path / "src")
        assert not (tmp_path / "src" / "pkg-1.0").exists()
        skip_without_tar_filters(str(refused.value))
    source = archives.unpack(archive, tmp_path / "src")
    assert source == tmp_path / "src" / "pkg-1.0"
    assert archives.build_system(source) == (["flit_core>=3.2"], "flit_core.buildapi", [])


def test_what_is_not_an_archive_is_refused_before_any_request(tmp_path: Path) -> None:
    with serving(lambda path: SDIST) as (url, requests):
        for name in ("simple/", "pkg", "pkg.tar.gz/../../etc/passwd", "x.exe"):
            with pytest.raises(DependencyRefused):
                archives.download(f"{url}/{name}", tmp_path)
        assert requests == []


def test_archives_past_the_caps_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tarball({"pkg-1.0/big.bin": b"\0" * 4096})
    with serving(lambda path: big) as (url, requests):
        monkeypatch.setattr(archives, "MAX_ARCHIVE_BYTES", 64)
        with pytest.raises(InstallFailed, match="larger than"):
            archives.download(f"{url}/pkg-1.0.tar.gz", tmp_path / "a")
        assert requests  # it was fetched, and stopped
        monkeypatch.setattr(archives, "MAX_ARCHIVE_BYTES", 1 << 20)
        monkeypatch.setattr(archives, "MAX_UNPACKED_BYTES", 1024)
        archive = archives.download(f"{url}/pkg-1.0.tar.gz", tmp_path / "b")
    with pytest.raises(InstallFailed, match="unpacks to more than"):
        archives.unpack(archive, tmp_path / "src")
    assert not (tmp_path / "src" / "pkg-1.0" / "big.bin").exists()


def test_members_leaving_the_folder_are_refused(tmp_path: Path) -> None:
    escape = tmp_path / "escaped.txt"
    hostile = tarball({"pkg-1.0/setup.py": b"", f"pkg-1.0/../../{escape.name}": b"x",
                       str(escape): b"x"})
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "pkg-1.0.tar.gz").write_bytes(hostile)
    archive = archives.Archive("https://example.org/pkg-1.0.tar.gz",
                               tmp_path / "dl" / "pkg-1.0.tar.gz", "")
    with pytest.raises(InstallFailed) as refused:
        archives.unpack(archive, tmp_path / "deep" / "src")
    assert not escape.exists() and not (tmp_path / "deep" / escape.name).exists()
    if not archives.SAFE_TAR:
        skip_without_tar_filters(str(refused.value))
    assert "not a readable archive" in str(refused.value)


def test_a_tarball_is_refused_before_it_is_fetched_where_it_cannot_be_unpacked_safely(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archives, "SAFE_TAR", False)
    for name in ("pkg-1.0.tar.gz", "pkg-1.0.tgz"):
        with pytest.raises(InstallFailed) as refused:
            archives.check_unpackable(f"https://example.org/{name}")
        assert "3.11.4+" in str(refused.value) and "\n" not in str(refused.value)
    for name in ("pkg-1.0.zip", "pkg-1.0-py3-none-any.whl"):
        archives.check_unpackable(f"https://example.org/{name}")
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "pkg-1.0.tar.gz").write_bytes(SDIST)
    archive = archives.Archive("https://example.org/pkg-1.0.tar.gz",
                               tmp_path / "dl" / "pkg-1.0.tar.gz", "")
    with pytest.raises(InstallFailed, match="3.11.4"):
        archives.unpack(archive, tmp_path / "src")
    assert not (tmp_path / "src" / "pkg-1.0").exists()


def test_build_requirements_are_held_to_the_same_policy(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools @ https://evil.example/setuptools.tar.gz"]\n')
    with pytest.raises(DependencyRefused):
        archives.build_system(tmp_path)
