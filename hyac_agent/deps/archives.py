"""Direct-URL archives (when the owner allows them): fetched by the agent itself.

The agent downloads the archive with its own HTTP client and unpacks it with tarfile's
``data`` filter, so nothing of the package runs while there is a network; only the
sandbox without one (``installers.build_wheel``) ever executes its build script. An
archive's sha256 is recorded in the lock, and a later install refuses an archive that
changed.
"""

from __future__ import annotations

import hashlib
import platform
import re
import sys
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from hyac_agent.deps.policy import check_requirement
from hyac_common.errors import DependencyRefused, InstallFailed

MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024
_TIMEOUT = 60.0
# PEP 517's fallback for a source tree without [build-system].
_DEFAULT_BUILD = (["setuptools>=40.8.0"], "setuptools.build_meta:__legacy__")
_ARCHIVE_NAME = re.compile(r"[A-Za-z0-9._+-]+\.(tar\.gz|tgz|zip|whl)")
#: tarfile's extraction filters (Python 3.10.12+, 3.11.4+): without the ``data`` filter a
#: tarball's members may write outside their folder, so a .tar.gz sdist is refused
SAFE_TAR = hasattr(tarfile, "data_filter")


def tar_refusal() -> str:
    """Why this agent refuses .tar.gz sdists (its Python lacks the extraction filters)."""
    return (f"unpacking a .tar.gz sdist safely needs the agent on Python 3.10.12+ or 3.11.4+ "
            f"(it runs {platform.python_version()}); a wheel or a .zip sdist works")


def check_unpackable(url: str) -> None:
    """Refuse, before anything is fetched, an archive this agent could not unpack safely."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if not SAFE_TAR and name.endswith((".tar.gz", ".tgz")):
        raise InstallFailed(tar_refusal())


@dataclass(frozen=True)
class Archive:
    url: str
    path: Path
    sha256: str

    @property
    def is_wheel(self) -> bool:
        return self.path.name.endswith(".whl")


class _HttpOnly(urllib.request.HTTPRedirectHandler):
    """Redirects stay on http(s): never ftp: or file: on the agent's host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urlsplit(newurl).scheme not in ("http", "https"):
            raise InstallFailed(f"{req.full_url} redirects to a non-http URL")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def download(url: str, folder: Path, expected_sha256: str | None = None) -> Archive:
    """Fetch ``url`` into ``folder`` under its own file name, size-capped."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if not _ARCHIVE_NAME.fullmatch(name):
        raise DependencyRefused(f"{url}: a direct URL must name a .tar.gz, .zip or .whl archive")
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    opener = urllib.request.build_opener(_HttpOnly)
    try:
        with opener.open(url, timeout=_TIMEOUT) as response, open(folder / name, "wb") as out:
            size = 0
            while chunk := response.read(1 << 16):
                size += len(chunk)
                if size > MAX_ARCHIVE_BYTES:
                    raise InstallFailed(f"{url}: larger than {MAX_ARCHIVE_BYTES >> 20} MiB")
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise InstallFailed(f"downloading {url} failed: {getattr(exc, 'reason', exc)}") from None
    if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
        raise InstallFailed(f"{url} changed since it was locked (its sha256 differs)")
    return Archive(url, folder / name, digest.hexdigest())


def unpack(archive: Archive, folder: Path) -> Path:
    """The source tree of an sdist: its single top-level folder, unpacked into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if archive.path.name.endswith(".zip"):
            with zipfile.ZipFile(archive.path) as zipped:
                _check_unpacked_size(archive, sum(i.file_size for i in zipped.infolist()))
                zipped.extractall(folder)  # zipfile drops absolute and ".." parts
        else:
            with tarfile.open(archive.path) as tarred:
                _check_unpacked_size(archive, sum(m.size for m in tarred.getmembers()))
                if not SAFE_TAR:  # read, never extracted
                    raise InstallFailed(tar_refusal())
                tarred.extractall(folder, filter="data")
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise InstallFailed(f"{archive.url} is not a readable archive ({exc})") from None
    tops = [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]
    if len(tops) != 1:
        raise InstallFailed(f"{archive.url}: an sdist holds exactly one top-level folder")
    return tops[0]


def _check_unpacked_size(archive: Archive, size: int) -> None:
    # The sizes in the headers are what extraction writes: a small archive of zeros
    # cannot fill the agent's disk.
    if size > MAX_UNPACKED_BYTES:
        raise InstallFailed(f"{archive.url} unpacks to more than {MAX_UNPACKED_BYTES >> 20} MiB")


def build_system(source: Path) -> tuple[list[str], str, list[str]]:
    """(requires, build-backend, backend-path) of a source tree; requires are checked
    like a tenant's own requirements (a build may not pull from a URL either)."""
    pyproject = source / "pyproject.toml"
    if not pyproject.is_file():
        return list(_DEFAULT_BUILD[0]), _DEFAULT_BUILD[1], []
    try:
        table = tomllib.loads(pyproject.read_text()).get("build-system", {})
    except (OSError, ValueError) as exc:
        raise InstallFailed(f"pyproject.toml of the archive is not readable ({exc})") from None
    requires = table.get("requires", _DEFAULT_BUILD[0])
    backend = table.get("build-backend", _DEFAULT_BUILD[1])
    path = table.get("backend-path", [])
    if not (isinstance(requires, list) and all(isinstance(r, str) for r in requires)
            and isinstance(backend, str) and isinstance(path, list)):
        raise InstallFailed("pyproject.toml of the archive has a malformed [build-system]")
    for requirement in requires:
        check_requirement(requirement, allow_urls=False)
    return requires, backend, [str(p) for p in path]
