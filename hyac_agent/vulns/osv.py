"""OSV records: what Hyac keeps of one, checked field by field, and its severity.

A record comes from a file an operator imports or from an online source; either may be
hostile or broken, so every field Hyac keeps is checked for type and bounded in size
(``AdvisoryRefused`` names the first bad one) and nothing else is kept: ``details``,
references and credits stay in the source.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from hyac_agent.vulns.versions import ORDERING, normalize_name
from hyac_common.errors import AdvisoryRefused

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
MAX_SUMMARY = 500
MAX_AFFECTED = 500
MAX_EVENTS = 1000
MAX_VERSIONS = 20000
MAX_TEXT = 256
#: severity names from least to most severe; "unrated" advisories meet every threshold
SEVERITIES = ("low", "moderate", "high", "critical")


@dataclass
class Advisory:
    id: str
    modified: str
    aliases: list[str]
    summary: str
    severity: str  # one of SEVERITIES, or "unrated"
    score: float | None
    withdrawn: bool
    #: (ecosystem, normalized name) -> the affected entries for it ({"ranges", "versions"})
    affected: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)


def _text(value: Any, where: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise AdvisoryRefused(f"{where}: expected a string of at most {limit} characters")
    return value


def _list(value: Any, where: str, limit: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > limit:
        raise AdvisoryRefused(f"{where}: expected a list of at most {limit} items")
    return value


def parse(record: Any, where: str = "record") -> Advisory:
    """The advisory of one OSV record; AdvisoryRefused when it is not well-formed."""
    if not isinstance(record, dict):
        raise AdvisoryRefused(f"{where}: an OSV record is a JSON object")
    ident = _text(record.get("id"), f"{where}: id", 100)
    if not _ID.fullmatch(ident):
        raise AdvisoryRefused(f"{where}: id {ident[:40]!r} is not an OSV id")
    where = f"{where} ({ident})"
    aliases = [_text(a, f"{where}: aliases", 100)
               for a in _list(record.get("aliases"), f"{where}: aliases", 50)]
    summary = record.get("summary") or record.get("details") or ""
    summary = " ".join(_text(summary, f"{where}: summary", 1 << 20).split())
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1] + "…"
    severity, score = _severity(record, where)
    advisory = Advisory(
        id=ident, modified=_text(record.get("modified", ""), f"{where}: modified", 40),
        aliases=aliases, summary=summary, severity=severity, score=score,
        withdrawn=bool(record.get("withdrawn")),
    )
    for index, entry in enumerate(_list(record.get("affected"), f"{where}: affected", MAX_AFFECTED)):
        here = f"{where}: affected[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("package"), dict):
            raise AdvisoryRefused(f"{here}: expected an object with a package")
        package = entry["package"]
        ecosystem = _text(package.get("ecosystem", ""), f"{here}.package.ecosystem")
        name = _text(package.get("name", ""), f"{here}.package.name", 214)
        ranges = _ranges(entry.get("ranges"), here)
        versions = [_text(v, f"{here}.versions", 128)
                    for v in _list(entry.get("versions"), f"{here}.versions", MAX_VERSIONS)]
        base = ecosystem.split(":", 1)[0]  # "PyPI", "npm"; suffixes name a release
        if base not in ORDERING or not name:
            continue  # kept only for the ecosystems Hyac's locks hold
        advisory.affected.setdefault((base, normalize_name(base, name)), []).append(
            {"ranges": ranges, "versions": versions})
    return advisory


def _ranges(value: Any, where: str) -> list[dict[str, Any]]:
    ranges = []
    for index, spans in enumerate(_list(value, f"{where}.ranges", 100)):
        here = f"{where}.ranges[{index}]"
        if not isinstance(spans, dict):
            raise AdvisoryRefused(f"{here}: expected an object")
        kind = _text(spans.get("type", ""), f"{here}.type", 20)
        events = []
        for event in _list(spans.get("events"), f"{here}.events", MAX_EVENTS):
            if (not isinstance(event, dict) or len(event) != 1
                    or next(iter(event)) not in ("introduced", "fixed", "last_affected", "limit")):
                raise AdvisoryRefused(f"{here}.events: each event is one of introduced, fixed, "
                                      "last_affected, limit")
            (kind_of, version), = event.items()
            events.append({kind_of: _text(version, f"{here}.events", 128)})
        ranges.append({"type": kind, "events": events})
    return ranges


def _severity(record: dict[str, Any], where: str) -> tuple[str, float | None]:
    """The advisory's rating: the database's own word (GitHub's ``database_specific``),
    else a CVSS v3 vector's base score; "unrated" when neither is there."""
    score = None
    for item in _list(record.get("severity"), f"{where}: severity", 10):
        if isinstance(item, dict) and item.get("type") == "CVSS_V3":
            score = cvss3_score(_text(item.get("score", ""), f"{where}: severity", 200))
            if score is not None:
                break
    specific = record.get("database_specific")
    word = specific.get("severity") if isinstance(specific, dict) else None
    if isinstance(word, str) and word.lower() in (*SEVERITIES, "medium"):
        return ("moderate" if word.lower() == "medium" else word.lower()), score
    if score is None:
        return "unrated", None
    if score >= 9.0:
        return "critical", score
    if score >= 7.0:
        return "high", score
    return ("moderate" if score >= 4.0 else "low"), score


_CVSS3 = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}


def cvss3_score(vector: str) -> float | None:
    """The CVSS v3.x base score of ``vector`` (None when it is not a v3 base vector)."""
    parts = vector.split("/")
    if not parts or not parts[0].startswith("CVSS:3"):
        return None
    metrics = dict(p.split(":", 1) for p in parts[1:] if ":" in p)
    try:
        changed = metrics["S"] == "C"
        pr = {"N": 0.85, "L": 0.68 if changed else 0.62, "H": 0.5 if changed else 0.27}[metrics["PR"]]
        av, ac, ui = (_CVSS3[k][metrics[k]] for k in ("AV", "AC", "UI"))
        c, i, a = (_CVSS3[k][metrics[k]] for k in ("C", "I", "A"))
    except KeyError:
        return None
    iss = 1 - (1 - c) * (1 - i) * (1 - a)
    impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if changed else 6.42 * iss
    if impact <= 0:
        return 0.0
    exploitability = 8.22 * av * ac * pr * ui
    base = min(1.08 * (impact + exploitability), 10) if changed else min(impact + exploitability, 10)
    return math.ceil(base * 10 - 1e-9) / 10
