"""Remote template sources: another agent's registry, read-only.

An agent shares its approved templates at ``/v1/templates/public`` when its owner sets
``HYAC_TEMPLATES_PUBLIC=1``. A source is only read: a listing and a template's files,
each answer bounded in size and time, and a template's files checked here as a publish
checks them, its hash compared with the one the source announced.

A source is another party's server, and its owner decides how slowly it answers (or its
name's DNS servers do): reads run on threads of their own (``FETCHES``), never the
agent's shared ones, each within ``TOTAL_SECONDS`` overall, and a source's listing is read
once for every request that wants it at the same time, then kept ``LISTING_TTL`` seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from hyac_agent.templates.files import check_template, content_sha256, decode_files
from hyac_common.errors import InvalidInput, InvalidTemplate, NotFound

MAX_ANSWER_BYTES = 4 * 1024 * 1024
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
#: the longest a read of a source takes, however slowly it sends its answer
TOTAL_SECONDS = 20.0
#: how long a source's listing (or its failure) is kept
LISTING_TTL = 30.0
#: the threads that read sources: a slow source holds these, and only these
FETCHES = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="hyac-templates")
T = TypeVar("T")


def public_enabled() -> bool:
    return os.environ.get("HYAC_TEMPLATES_PUBLIC", "") in ("1", "true", "yes")


def check_source_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"a template source is an http:// or https:// URL, not {url[:200]!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidInput("a template source URL has no user, password, query or fragment")
    if len(url) > 512:
        raise InvalidInput("a template source URL is at most 512 characters")
    return url.strip().rstrip("/")


class SourceUnreachable(InvalidInput):
    """A source that did not answer, or not as a registry does (reported, then skipped)."""


def _get(url: str) -> Any:
    deadline = time.monotonic() + TOTAL_SECONDS
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client, \
                client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code == 404:
                raise NotFound(f"{url} answered 404")
            if response.status_code != 200:
                raise SourceUnreachable(f"{url} answered {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise SourceUnreachable(f"{url} answered more than {MAX_ANSWER_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise SourceUnreachable(f"{url} took longer than {TOTAL_SECONDS:g}s to answer")
    except httpx.HTTPError as exc:
        raise SourceUnreachable(f"{url} could not be read: {exc}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise SourceUnreachable(f"{url} did not answer JSON") from None


def remote_listing(source: str) -> list[dict[str, Any]]:
    answer = _get(f"{source}/v1/templates/public")
    if not isinstance(answer, list):
        raise SourceUnreachable(f"{source} did not answer a list of templates")
    found = []
    for item in answer[:500]:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            # Only what a listing shows, each field bounded; the source is not trusted.
            found.append({key: item.get(key) for key in
                          ("name", "version", "title", "description", "tags", "runtime",
                           "author", "licence", "sha256", "installs", "rating")}
                         | {"source": source, "status": "approved"})
    return found


def remote_install(source: str, name: str, version: str | None) -> dict[str, Any]:
    url = f"{source}/v1/templates/public/{quote(name, safe='')}"
    if version:
        url += f"?version={quote(version, safe='')}"
    answer = _get(url)
    if not isinstance(answer, dict) or not isinstance(answer.get("files_b64"), dict):
        raise InvalidTemplate(f"{source} did not answer a template")
    files = decode_files(answer["files_b64"])
    manifest = check_template(files)
    if manifest.name != name or (version and manifest.version != version):
        raise InvalidTemplate(f"{source} answered {manifest.name}@{manifest.version} for {name}")
    sha256 = content_sha256(files)
    if answer.get("sha256") != sha256:
        raise InvalidTemplate(f"the files {source} sent for {name} do not match their hash")
    return {**manifest.model_dump(), "sha256": sha256, "source": source,
            "files_b64": answer["files_b64"]}


async def _on_fetch_threads(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` on ``FETCHES``; a caller waits at most a little over one read's
    time, queued behind others included, then the source counts as unreachable (and a
    read still queued is dropped)."""
    future = asyncio.get_running_loop().run_in_executor(FETCHES, work, *args)
    try:
        return await asyncio.wait_for(future, TOTAL_SECONDS + 15.0)
    except asyncio.TimeoutError:
        raise SourceUnreachable("template sources are slow to answer now; try again later") from None


#: (the event loop, a source) -> when its listing was asked for, and the answer
_listings: dict[tuple[asyncio.AbstractEventLoop, str],
                tuple[float, asyncio.Future[list[dict[str, Any]]]]] = {}


async def listing(source: str) -> list[dict[str, Any]]:
    """``remote_listing(source)``, read once for every request that asks meanwhile, and
    kept ``LISTING_TTL`` seconds (a failure too: a source that is down is not asked again
    by every request)."""
    now, key = time.monotonic(), (asyncio.get_running_loop(), source)
    kept = _listings.get(key)
    if kept is None or now - kept[0] > LISTING_TTL:
        if len(_listings) > 256:
            _listings.clear()
        future = asyncio.ensure_future(_on_fetch_threads(remote_listing, source))
        # marked as read: a failure kept for later waiters is not "never retrieved"
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        kept = _listings[key] = (now, future)
    return await asyncio.shield(kept[1])


async def install(source: str, name: str, version: str | None) -> dict[str, Any]:
    """``remote_install`` on the fetch threads."""
    return await _on_fetch_threads(remote_install, source, name, version)
