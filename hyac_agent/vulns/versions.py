"""Whether a package version is inside an OSV advisory's affected ranges.

OSV describes affected versions as ``ranges`` of ``events`` (``introduced``, ``fixed``,
``last_affected``, ``limit``) and/or an explicit ``versions`` list. ``affected`` follows
the evaluation the OSV schema gives for ``ECOSYSTEM`` and ``SEMVER`` ranges: sort the
events by version and walk them; an ``introduced`` at or below the version turns
"affected" on, a ``fixed`` at or below it (or a ``last_affected`` below it) turns it off.

Versions are ordered the ecosystem's way: PEP 440 for PyPI (``packaging``), semantic
versioning 2.0 for npm. A version or event that cannot be ordered is ``Unorderable``: the
caller reports the package as unknown rather than guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

_SEMVER = re.compile(
    r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)


class Unorderable(ValueError):
    """A version the ecosystem's ordering cannot place."""


@dataclass(frozen=True)
class Match:
    """A version inside an advisory: ``fixed`` is the first version that fixes it (None
    when the advisory names none)."""

    fixed: str | None


def semver_key(text: str) -> tuple[Any, ...]:
    """Semantic Versioning 2.0 precedence: a release sorts after its pre-releases;
    pre-release identifiers compare numerically when numeric, else as ASCII."""
    match = _SEMVER.fullmatch(text.strip())
    if match is None:
        raise Unorderable(f"{text!r} is not a semantic version")
    major, minor, patch, pre = match.groups()
    if pre is None:
        pre_key: tuple[Any, ...] = ((1,),)
    else:
        pre_key = ((0,), *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    return (int(major), int(minor), int(patch), pre_key)


def pypi_key(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise Unorderable(f"{text!r} is not a PEP 440 version") from None


#: ecosystem -> how its versions order (the ecosystems Hyac's locks hold)
ORDERING: dict[str, Callable[[str], Any]] = {"PyPI": pypi_key, "npm": semver_key}


def normalize_name(ecosystem: str, name: str) -> str:
    """The name as the ecosystem compares names: PEP 503 for PyPI, exact for npm."""
    if ecosystem == "PyPI":
        return re.sub(r"[-_.]+", "-", name).lower()
    return name


def affected(ecosystem: str, version: str, entry: dict[str, Any]) -> Match | None:
    """The match of ``version`` in one OSV ``affected`` entry, None when outside it.
    Raises Unorderable when the version or a range of the entry cannot be ordered."""
    key = ORDERING[ecosystem]
    own = key(version)
    for listed in entry.get("versions") or ():
        try:
            if key(listed) == own:
                return Match(_fixed_after(entry, own, key))
        except Unorderable:
            if listed == version:
                return Match(_fixed_after(entry, own, key))
    for spans in entry.get("ranges") or ():
        if spans.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue  # GIT ranges are commits: the explicit versions list covers them
        found = _in_range(own, spans.get("events") or [], key)
        if found is not None:
            return found
    return None


def _sorted_events(events: list[dict[str, str]], key: Callable[[str], Any]
                   ) -> list[tuple[str, str, Any]]:
    order = {"introduced": 0, "last_affected": 1, "fixed": 2, "limit": 3}
    parsed: list[tuple[str, str, Any]] = []
    for event in events:
        (kind, value), = event.items()
        if kind == "introduced" and value == "0":
            parsed.append((kind, value, None))  # before every version
        else:
            parsed.append((kind, value, key(value)))
    # introduced "0" first; at one version an introduction before a fix
    parsed.sort(key=lambda e: (0, 0, order[e[0]]) if e[2] is None else (1, e[2], order[e[0]]))
    return parsed


def _in_range(own: Any, events: list[dict[str, str]], key: Callable[[str], Any]) -> Match | None:
    inside = False
    fixed: str | None = None
    for kind, value, at in _sorted_events(events, key):
        if kind == "introduced" and (at is None or own >= at):
            inside, fixed = True, None
        elif kind == "fixed":
            if own >= at:
                inside = False
            elif inside and fixed is None:
                fixed = value  # the first fix after the version's introduction
        elif kind == "last_affected" and own > at:
            inside = False
    if not inside:
        return None
    return Match(fixed)


def _fixed_after(entry: dict[str, Any], own: Any, key: Callable[[str], Any]) -> str | None:
    """The first ``fixed`` event above ``own`` in any range (for a listed version)."""
    best: tuple[Any, str] | None = None
    for spans in entry.get("ranges") or ():
        if spans.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        for event in spans.get("events") or ():
            value = event.get("fixed")
            if value is None:
                continue
            at = key(value)
            if at > own and (best is None or at < best[0]):
                best = (at, value)
    return best[1] if best else None
