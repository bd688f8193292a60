"""Reading OSV dumps: one JSON file (a record or a list of records), a folder of them, or
the per-ecosystem ``all.zip`` files OSV publishes.

Nothing is extracted to disk: zip members are read in memory, one at a time, each
bounded in size, so a member named ``../../etc/x`` cannot write anywhere; such names (and
absolute ones, and anything but ``*.json``) are refused all the same, as a sign the
archive is not an OSV dump. A folder is walked without following symbolic links. Every
record is parsed (``osv.parse``) before the database changes, so a bad file changes
nothing.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from hyac_agent.vulns.osv import Advisory, parse
from hyac_common.errors import AdvisoryRefused

#: the largest record file (OSV records are a few KiB; the biggest known are ~1 MiB)
MAX_FILE_BYTES = int(os.environ.get("HYAC_VULNDB_MAX_FILE_BYTES", 8 * 1024 * 1024))
#: the most data an import may unpack, and the most records it may hold
MAX_TOTAL_BYTES = int(os.environ.get("HYAC_VULNDB_MAX_TOTAL_BYTES", 4 * 1024 ** 3))
MAX_RECORDS = 2_000_000
_CHUNK = 1 << 16


def read(path: Path) -> list[Advisory]:
    """Every advisory in ``path`` (file, folder or zip); AdvisoryRefused for the first
    thing wrong with it."""
    budget = [MAX_TOTAL_BYTES]
    advisories: list[Advisory] = []
    for where, data in _documents(path, budget):
        try:
            document = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise AdvisoryRefused(f"{where}: not JSON ({str(exc)[:80]})") from None
        records = document if isinstance(document, list) else [document]
        for index, record in enumerate(records):
            here = where if len(records) == 1 else f"{where}[{index}]"
            advisories.append(parse(record, here))
            if len(advisories) > MAX_RECORDS:
                raise AdvisoryRefused(f"{path}: more than {MAX_RECORDS} records")
    return advisories


def _documents(path: Path, budget: list[int]) -> Iterator[tuple[str, bytes]]:
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        raise AdvisoryRefused(f"{path}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        for folder, dirs, files in os.walk(path, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                child = Path(folder) / name
                if name.endswith((".json", ".zip")) and stat.S_ISREG(os.lstat(child).st_mode):
                    yield from _documents(child, budget)
    elif not stat.S_ISREG(mode):
        raise AdvisoryRefused(f"{path}: not a regular file or folder")
    elif zipfile.is_zipfile(path):
        yield from _zip_members(path, budget)
    else:
        size = os.stat(path).st_size
        _spend(budget, size, str(path))
        if size > MAX_FILE_BYTES:
            raise AdvisoryRefused(f"{path}: {size} bytes is larger than a record file may be "
                                  f"({MAX_FILE_BYTES})")
        yield str(path), path.read_bytes()


def _zip_members(path: Path, budget: list[int]) -> Iterator[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise AdvisoryRefused(f"{path}: not a readable zip ({exc})") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_RECORDS:
            raise AdvisoryRefused(f"{path}: more than {MAX_RECORDS} members")
        for info in members:
            if info.is_dir():
                continue
            _check_member_name(path, info.filename)
            where = f"{path}:{info.filename}"
            if info.file_size > MAX_FILE_BYTES:
                raise AdvisoryRefused(f"{where}: {info.file_size} bytes is larger than a record "
                                      f"file may be ({MAX_FILE_BYTES})")
            _spend(budget, info.file_size, where)
            yield where, _read_member(archive, info, where)


def _check_member_name(path: Path, name: str) -> None:
    pure = PurePosixPath(name)
    if (name.startswith("/") or "\\" in name or ".." in pure.parts or ":" in name
            or "\x00" in name or not name.endswith(".json")):
        raise AdvisoryRefused(f"{path}: member {name[:120]!r} is not an OSV record's name "
                              "(a path outside the archive, or not *.json)")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    """The member's bytes, never more than it declared (a lying header is refused)."""
    chunks: list[bytes] = []
    total = 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                total += len(chunk)
                if total > info.file_size or total > MAX_FILE_BYTES:
                    raise AdvisoryRefused(f"{where}: holds more than it declares")
                chunks.append(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise AdvisoryRefused(f"{where}: cannot be read ({exc})") from None
    return b"".join(chunks)


def _spend(budget: list[int], size: int, where: str) -> None:
    budget[0] -= size
    if budget[0] < 0:
        raise AdvisoryRefused(f"{where}: the import unpacks to more than {MAX_TOTAL_BYTES} bytes")


def ecosystems(advisories: list[Advisory]) -> set[str]:
    return {ecosystem for advisory in advisories for ecosystem, _name in advisory.affected}


__all__ = ["MAX_FILE_BYTES", "MAX_TOTAL_BYTES", "ecosystems", "read"]

