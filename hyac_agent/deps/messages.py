"""What a tenant is told when an installer fails: the resolver's own sentence, one line.

An installer's full output holds build logs (a hostile package's build script can print
anything it read), host paths and the environment; it goes to the agent's log for the
operator, and the deploy error carries only uv's ``error:``/``cause:`` lines or npm's
first ``npm error`` line, host paths replaced, at most ``MAX_CHARS`` long.
"""

from __future__ import annotations

import re

MAX_CHARS = 400

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# An absolute path not inside a URL: "/root/.cache/x" but not "https://host/x".
_HOST_PATH = re.compile(r"(?<![\w.:/@-])/[^\s'\"`()\[\],;]*")
_NPM_NOISE = re.compile(r"^(code \S+|errno \S+|\d{3}\s*$|A complete log|Log files were)")


def summarize(output: str) -> str:
    """The installer's message for a tenant: one short line, no host paths."""
    lines = [_ANSI.sub("", line).rstrip() for line in output.splitlines()]
    message = _uv_message(lines) or _npm_message(lines) or ""
    message = _HOST_PATH.sub("<path>", " ".join(message.split()))
    if len(message) > MAX_CHARS:
        message = message[: MAX_CHARS - 1] + "…"
    return message


def _uv_message(lines: list[str]) -> str:
    parts: list[str] = []
    block = ""
    for line in lines:
        stripped = line.strip()
        if line.startswith(("error:", "  cause:", "  Caused by:")) or stripped.startswith(
                ("×", "╰─▶", "ERROR:")):
            block = "error"
            parts.append(re.sub(r"^(error:|cause:|Caused by:|×|╰─▶|ERROR:)\s*", "", stripped))
        elif block and line.startswith("   ") and stripped:
            parts.append(stripped)  # a cause continued on the next lines
        else:
            block = ""
    if not parts:
        return ""
    return parts[0].rstrip(":") + (": " + " ".join(parts[1:]) if len(parts) > 1 else "")


def _npm_message(lines: list[str]) -> str:
    for line in lines:
        match = re.match(r"npm (?:error|ERR!)\s+(?:\d{3}\s+)?(.*)", line)
        if match and match.group(1).strip() and not _NPM_NOISE.match(match.group(1)):
            return match.group(1)
    return ""
