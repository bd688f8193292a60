"""A template's manifest, ``template.toml``: what it is, who wrote it, what it needs.

Every field is bounded here, once: a manifest is written by any user and shown to every
tenant, so an oversized or malformed one is refused at publish with the field named.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hyac_common.errors import InvalidTemplate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MANIFEST_FILE = "template.toml"
MAX_MANIFEST_BYTES = 16 * 1024
#: lower-case words joined by '-': a name reads the same in a URL, a shell and a folder
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
#: semantic versioning 2.0 (https://semver.org), without build metadata
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
RUNTIME_RE = re.compile(r"^(python|python3\.\d+|node20|deno)$")
VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
#: the sample request sits beside hyac.toml under a plain name: never a dot-file or a
#: folder's (``.vscode/tasks.json`` is JSON too, and an editor may run what it says)
SAMPLE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,60}\.json$")


class Requirement(BaseModel):
    """A secret or environment variable the template's functions read."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(max_length=300)
    #: env only: the value `hyac init` writes (secrets never have one)
    default: Optional[str] = Field(None, max_length=300)


class TemplateManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=2, max_length=48)
    version: str = Field(max_length=64)
    title: str = Field(min_length=1, max_length=80)
    description: str = Field(min_length=1, max_length=500)
    tags: list[str] = Field(default_factory=list, max_length=10)
    runtime: str = Field(description="python (any python3.X), python3.X, node20 or deno")
    author: str = Field(min_length=1, max_length=100)
    licence: str = Field(min_length=1, max_length=64)
    sample: str = Field("sample.json", max_length=200,
                        description="the file holding the sample request")
    env: dict[str, Requirement] = Field(default_factory=dict, max_length=32)
    secrets: dict[str, Requirement] = Field(default_factory=dict, max_length=32)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("lower-case letters, digits and single '-' between words")
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not SEMVER_RE.match(value):
            raise ValueError("a semantic version such as 1.2.0")
        return value

    @field_validator("sample")
    @classmethod
    def _sample(cls, value: str) -> str:
        if not SAMPLE_RE.match(value):
            raise ValueError("a file name such as sample.json, beside hyac.toml")
        return value

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, value: str) -> str:
        if not RUNTIME_RE.match(value):
            raise ValueError("python, python3.X, node20 or deno")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not TAG_RE.match(tag):
                raise ValueError(f"tag {tag[:40]!r}: lower-case letters, digits and '-', at most 32")
        return value

    @field_validator("title", "description", "author", "licence")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(ord(char) < 0x20 and char not in "\n\t" for char in value):
            raise ValueError("control characters are not allowed")
        return value

    @field_validator("env", "secrets")
    @classmethod
    def _variables(cls, value: dict[str, Requirement]) -> dict[str, Requirement]:
        for key in value:
            if not VARIABLE_RE.match(key):
                raise ValueError(f"{key[:70]!r} is not a variable name (letters, digits, '_')")
        return value

    def sort_key(self) -> tuple[int, int, int, int, str]:
        return version_key(self.version)


def version_key(version: str) -> tuple[int, int, int, int, str]:
    """Orders versions as semver does: a pre-release sorts before its release."""
    match = SEMVER_RE.match(version)
    if match is None:
        return (0, 0, 0, 0, version)
    major, minor, patch, pre = match.groups()
    return (int(major), int(minor), int(patch), 0 if pre else 1, pre or "")


def parse_manifest(raw: bytes) -> TemplateManifest:
    """``template.toml``'s ``[template]`` table, validated; InvalidTemplate names the field."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise InvalidTemplate(f"{MANIFEST_FILE} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidTemplate(f"{MANIFEST_FILE} is not valid TOML: {exc}") from None
    table = data.get("template")
    if not isinstance(table, dict) or set(data) != {"template"}:
        raise InvalidTemplate(f"{MANIFEST_FILE} must hold one [template] table and nothing else")
    try:
        return TemplateManifest.model_validate(table)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "template"
        raise InvalidTemplate(f"{MANIFEST_FILE}: template.{where}: {first['msg']}",
                              field=where) from None
