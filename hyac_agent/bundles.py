"""Content-addressed function bundles: kept in the shared store, cached on disk.

A bundle is the function's files plus its entry and settings. Its sha256 names it. The
store keeps every deployed bundle as a blob (``pack``: written in the deploy's own
transaction), so any agent or worker sharing the store can run any version; each node
caches the files in ``BUNDLES_DIR/<sha256>/code/``, fetched on first use and checked
against the sha256 they were stored with. A cached bundle is written once, through a
temporary directory renamed into place, so a crash never leaves a half-written bundle
under its final name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from hyac_common.errors import FunctionLoadError, InvalidBundle, InvalidInput, PayloadTooLarge
from hyac_common.wire import DeployRequest

MAX_FILES = 1000
#: a file or folder name, in UTF-8 bytes (the NAME_MAX of common file systems)
MAX_NAME_BYTES = 255
#: a whole path inside the bundle, in UTF-8 bytes: far below PATH_MAX once it sits under
#: the data dir, so no file system refuses it when the bundle is written
MAX_PATH_BYTES = 1024
MAX_DEPTH = 32


def _bad_path(path: str, reason: str) -> InvalidBundle:
    shown = path if len(path) <= 120 else path[:100] + "…"
    return InvalidBundle(f"invalid file path in bundle: {shown!r}: {reason}", path=shown)


def _check_path(path: str) -> PurePosixPath:
    # Every reason a write of this path could fail or land outside the bundle is refused
    # here, so a deploy either stores the whole bundle or answers 400 with the reason.
    if not path:
        raise _bad_path(path, "empty path")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path):
        raise _bad_path(path, "control characters (or NUL) in the name")
    if "\\" in path:
        raise _bad_path(path, "use '/' between folders, not '\\'")
    pure = PurePosixPath(path)
    if pure.is_absolute():
        raise _bad_path(path, "absolute path (paths are relative to the project)")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise _bad_path(path, "empty, '.' or '..' path segment")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise _bad_path(path, f"path longer than {MAX_PATH_BYTES} bytes")
    if len(parts) > MAX_DEPTH:
        raise _bad_path(path, f"more than {MAX_DEPTH} folders deep")
    for part in parts:
        try:
            size = len(part.encode("utf-8"))
        except UnicodeEncodeError:
            raise _bad_path(path, "not valid Unicode") from None
        if size > MAX_NAME_BYTES:
            raise _bad_path(path, f"a name longer than {MAX_NAME_BYTES} bytes")
    return pure


def _check_tree(paths: list[str]) -> None:
    """No path is also the folder of another (``a`` and ``a/b``): both cannot exist."""
    files = set(paths)
    for path in sorted(paths):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in files:
                raise _bad_path(folder, f"both a file and the folder of {path!r}")


def check_unique_keys(raw: bytes) -> None:
    """Refuse a deploy request whose JSON names one key twice (two files of one path):
    parsers differ in which one counts, so what a client checked and what the agent
    stores could be different bundles. Blocking (it parses the whole request)."""

    def pairs_to_dict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in pairs:
            if key in found:
                raise _bad_path(key, "named twice in the request")
            found[key] = value
        return found

    try:
        json.loads(raw, object_pairs_hook=pairs_to_dict)
    except ValueError:
        pass  # not JSON at all: the request's own validation says so


def decode_bundle(request: DeployRequest, max_bytes: int) -> dict[str, bytes]:
    """Validate and decode the files of a deploy request."""
    if len(request.files_b64) > MAX_FILES:
        raise InvalidBundle(f"bundle has more than {MAX_FILES} files")
    files: dict[str, bytes] = {}
    total = 0
    for path, encoded in request.files_b64.items():
        _check_path(path)
        try:
            content = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"file {path!r} is not valid base64") from None
        total += len(content)
        if total > max_bytes:
            raise PayloadTooLarge(f"bundle is larger than the limit of {max_bytes} bytes")
        files[path] = content
    _check_tree(list(files))
    _check_path(request.entry)
    if request.entry not in files:
        raise InvalidInput(f"entry file {request.entry!r} is not in the bundle")
    return files


def bundle_sha256(files: dict[str, bytes], request: DeployRequest) -> str:
    manifest = {
        "entry": request.entry,
        # Defaults left out: a setting added in a later release must not change every hash.
        "config": request.config.model_dump(mode="json", exclude_defaults=True),
        "files": {p: hashlib.sha256(c).hexdigest() for p, c in sorted(files.items())},
    }
    if request.sample is not None:  # kept with the version: another sample, another version
        manifest["sample"] = request.sample.model_dump(mode="json")
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def pack(files: dict[str, bytes]) -> bytes:
    """The files as one blob: a JSON line of (path, size) in path order, then the bytes."""
    names = sorted(files)
    header = json.dumps([[path, len(files[path])] for path in names], separators=(",", ":"))
    return header.encode() + b"\n" + b"".join(files[path] for path in names)


def unpack(blob: bytes) -> dict[str, bytes]:
    """The files of a ``pack``ed blob, every path checked as at deploy."""
    header, _, body = blob.partition(b"\n")
    try:
        entries = json.loads(header)
        files: dict[str, bytes] = {}
        offset = 0
        for path, size in entries:
            _check_path(path)
            files[path] = body[offset:offset + size]
            offset += size
    except (ValueError, TypeError) as exc:
        raise InvalidBundle(f"stored bundle is malformed: {exc}") from None
    if offset != len(body):
        raise InvalidBundle("stored bundle is malformed: its sizes do not add up")
    _check_tree(list(files))
    return files


#: held while a finished write is put in place (every store of this process)
_PLACING = threading.Lock()


class BlobSource(Protocol):
    """Where bundles are kept for every node (the shared store)."""

    def get_blob(self, sha256: str) -> tuple[bytes, str] | None: ...


class BundleStore:
    def __init__(self, root: Path, shared: BlobSource | None = None) -> None:
        self.root = root
        #: the store every node shares: bundles missing here are fetched from it
        self.shared = shared
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def fetch(self, sha256: str) -> Path:
        """The code dir of bundle ``sha256``, fetched from the shared store and checked
        first if this node has not got it. Blocking. A bundle that is nowhere, or whose
        bytes do not match their sha256, is a FunctionLoadError naming no path."""
        if self.exists(sha256):
            return self.code_dir(sha256)
        found = self.shared.get_blob(sha256) if self.shared is not None else None
        if found is None:
            raise FunctionLoadError(f"the code of bundle {sha256[:12]} is not in the store")
        blob, digest = found
        if hashlib.sha256(blob).hexdigest() != digest:
            raise FunctionLoadError(
                f"the stored code of bundle {sha256[:12]} is damaged (its sha256 differs)"
            )
        try:
            files = unpack(blob)
        except InvalidBundle as exc:
            raise FunctionLoadError(f"bundle {sha256[:12]}: {exc.message}") from None
        return self.write(sha256, files)

    def cached(self) -> list[str]:
        """The sha256 of every bundle cached on this node."""
        return [p.name for p in self.root.iterdir()
                if not p.name.startswith(".") and (p / "complete").exists()]

    def files_of(self, sha256: str) -> dict[str, bytes]:
        """The files of a cached bundle (read back to share it)."""
        code = self.code_dir(sha256)
        return {str(p.relative_to(code)): p.read_bytes()
                for p in sorted(code.rglob("*")) if p.is_file() and not p.is_symlink()}

    def evict(self, sha256: str) -> None:
        """Drop a cached bundle (no version uses it any more)."""
        shutil.rmtree(self.root / sha256, ignore_errors=True)

    def code_dir(self, sha256: str) -> Path:
        return self.root / sha256 / "code"

    def exists(self, sha256: str) -> bool:
        return (self.root / sha256 / "complete").exists()

    def write(self, sha256: str, files: dict[str, bytes]) -> Path:
        final = self.root / sha256
        if self.exists(sha256):
            return final / "code"
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            code = tmp / "code"
            for rel, content in files.items():
                target = code / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
                target.chmod(0o644)
            for folder, _dirs, _files in os.walk(code):
                os.chmod(folder, 0o755)
            (tmp / "complete").write_text(sha256)
            os.chmod(tmp, 0o755)
            self._put_in_place(tmp, final, sha256)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final / "code"

    def _put_in_place(self, tmp: Path, final: Path, sha256: str) -> None:
        """Rename a finished write to its place. Writes of the same bundle may
        race (two deploys of the same code): the first one in wins and the
        others drop theirs. A complete bundle is never removed, since a sandbox
        may be reading it; only a crashed write's leftover (no `complete`) is."""
        with _PLACING:
            if self.exists(sha256):
                shutil.rmtree(tmp, ignore_errors=True)
                return
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)

    def sweep_temporary(self) -> None:
        """Remove what a crash left behind mid-write."""
        for leftover in self.root.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
