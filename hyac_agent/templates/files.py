"""A template's files: checked as a deploy bundle is, bounded, and hashed by content.

A template is a project: ``template.toml`` (its manifest), ``hyac.toml``, ``README.md``,
its sample request and ``functions/``; optionally ``tests/``. Nothing else is taken, so a
published template cannot carry an editor's settings, a virtualenv or a ``.git`` folder
into whoever installs it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path
from typing import Any

from hyac_agent.bundles import _check_path, _check_tree
from hyac_agent.templates.manifest import MANIFEST_FILE, TemplateManifest, parse_manifest, tomllib
from hyac_common.errors import InvalidInput, InvalidTemplate, PayloadTooLarge

MAX_FILES = 200
MAX_TEMPLATE_BYTES = 2 * 1024 * 1024
MAX_README_BYTES = 64 * 1024
REQUIRED = ("hyac.toml", "README.md", MANIFEST_FILE)
ALLOWED_FOLDERS = ("functions/", "tests/")


def decode_files(files_b64: dict[str, str]) -> dict[str, bytes]:
    if not isinstance(files_b64, dict):
        raise InvalidTemplate("files_b64 must map paths to base64 contents")
    if len(files_b64) > MAX_FILES:
        raise InvalidTemplate(f"a template holds at most {MAX_FILES} files")
    files: dict[str, bytes] = {}
    total = 0
    for path, encoded in files_b64.items():
        try:
            _check_path(path)
        except InvalidInput as exc:
            raise InvalidTemplate(exc.message, **exc.details) from None
        try:
            content = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise InvalidTemplate(f"file {path!r} is not valid base64") from None
        total += len(content)
        if total > MAX_TEMPLATE_BYTES:
            raise PayloadTooLarge(f"a template is at most {MAX_TEMPLATE_BYTES} bytes")
        files[path] = content
    return files


def check_template(files: dict[str, bytes]) -> TemplateManifest:
    """The manifest of a complete, well-formed template; InvalidTemplate says what is wrong."""
    try:
        _check_tree(list(files))
    except InvalidInput as exc:
        raise InvalidTemplate(exc.message, **exc.details) from None
    missing = [name for name in REQUIRED if name not in files]
    if missing:
        raise InvalidTemplate(f"a template needs {', '.join(missing)} (missing)")
    manifest = parse_manifest(files[MANIFEST_FILE])
    allowed_top = {*REQUIRED, manifest.sample}
    for path in files:
        if path not in allowed_top and not path.startswith(ALLOWED_FOLDERS):
            raise InvalidTemplate(
                f"{path!r} is not part of a template (only {', '.join(REQUIRED)}, the sample, "
                "functions/ and tests/)", path=path)
    if not any(path.startswith("functions/") for path in files):
        raise InvalidTemplate("a template needs at least one function under functions/")
    if len(files["README.md"]) > MAX_README_BYTES:
        raise InvalidTemplate(f"README.md is larger than {MAX_README_BYTES} bytes")
    for text_file in ("README.md", "hyac.toml"):
        try:
            files[text_file].decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidTemplate(f"{text_file} is not UTF-8 text") from None
    check_project_manifest(files["hyac.toml"])
    sample = files.get(manifest.sample)
    if sample is None:
        raise InvalidTemplate(f"the sample request {manifest.sample!r} is not in the template")
    check_sample(sample, manifest.sample)
    return manifest


#: settings a template may not make for whoever installs it
_REFUSED_SETTINGS = {
    "take_over": "take_over (the installer's deploys would overwrite functions of their other "
                 "projects)",
    "callback_url": "callback_url (the installer's task results would go to the template's "
                    "author; say in the README how to set one)",
}


def check_project_manifest(raw: bytes) -> None:
    """The template's hyac.toml: TOML, and none of the settings that act for its author."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidTemplate(f"hyac.toml is not valid TOML: {exc}") from None
    tables = [data.get("project")] + list((data.get("functions") or {}).values())
    for table in tables:
        if isinstance(table, dict):
            for key, why in _REFUSED_SETTINGS.items():
                if key in table:
                    raise InvalidTemplate(f"a template's hyac.toml may not set {why}", field=key)


def check_sample(raw: bytes, where: str) -> dict[str, Any]:
    """The sample request: ``{"function": NAME, "method", "query", "headers", "body"}``."""
    try:
        sample = json.loads(raw)
    except ValueError:
        raise InvalidTemplate(f"{where} is not JSON") from None
    if not isinstance(sample, dict) or not isinstance(sample.get("function"), str):
        raise InvalidTemplate(f"{where} must be an object naming the \"function\" it invokes")
    return sample


def content_sha256(files: dict[str, bytes]) -> str:
    """The template's identity: its paths and their contents, nothing else."""
    listing = {path: hashlib.sha256(content).hexdigest() for path, content in sorted(files.items())}
    canonical = json.dumps(listing, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def encode_files(files: dict[str, bytes]) -> dict[str, str]:
    return {path: base64.b64encode(content).decode() for path, content in sorted(files.items())}


_SKIPPED = {"__pycache__", "node_modules", ".venv", ".git", "typings"}


def collect_dir(root: Path) -> dict[str, bytes]:
    """The files of a template folder that a template may hold (see ``check_template``)."""
    manifest_path = root / MANIFEST_FILE
    sample = "sample.json"
    if manifest_path.is_file():
        try:
            sample = parse_manifest(manifest_path.read_bytes()).sample
        except InvalidTemplate:
            pass  # check_template reports it, with the rest
    files: dict[str, bytes] = {}
    for name in (*REQUIRED, sample):
        if (root / name).is_file():
            files[name] = (root / name).read_bytes()
    for folder in ALLOWED_FOLDERS:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            relative = path.relative_to(root)
            if any(part in _SKIPPED for part in relative.parts) or path.suffix == ".pyc":
                continue
            if path.is_symlink():
                raise InvalidTemplate(f"{relative.as_posix()} is a symbolic link: a template "
                                      "holds plain files only")
            if path.is_file():
                files[relative.as_posix()] = path.read_bytes()
    return files
