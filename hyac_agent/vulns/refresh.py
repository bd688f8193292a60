"""The advisory database kept current on its own: every ``HYAC_VULNDB_REFRESH`` seconds
(6 h by default, 0: never; once across the agents sharing a store) the agent imports
the OSV zips ``HYAC_VULNDB_FEEDS`` names (for example
``https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip``) and rescans every
tenant's active versions and the published templates; new findings are recorded with
the version and raise the ``vulnerabilities`` platform alert.

With no feed and only the local database there is nothing to refresh: the rescan then
happens when an import changes the database (``hyac vulndb import``). With an online
source (``HYAC_VULNDB_SOURCES=local,osv``) each refresh asks it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hyac_common.errors import AdvisoryRefused

log = logging.getLogger("hyac.vulns")


@contextlib.contextmanager
def download(url: str, max_bytes: int, folder: Path | None = None) -> Iterator[Path]:
    """``url`` (http or https, named by the operator) in a temporary file, refused past
    ``max_bytes``; the file is removed afterwards."""
    import httpx

    if not url.startswith(("https://", "http://")):
        raise AdvisoryRefused(f"{url[:120]}: an advisory feed is an http(s) URL")
    handle, name = tempfile.mkstemp(prefix=".osv-", suffix=".zip", dir=folder)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out, httpx.stream(
                "GET", url, timeout=httpx.Timeout(60.0), follow_redirects=True) as response:
            if response.status_code != 200:
                raise AdvisoryRefused(f"{url[:120]}: answered {response.status_code}")
            received = 0
            for chunk in response.iter_bytes(1 << 16):
                received += len(chunk)
                if received > max_bytes:
                    raise AdvisoryRefused(f"{url[:120]}: larger than {max_bytes} bytes "
                                          "(HYAC_VULNDB_MAX_UPLOAD_BYTES)")
                out.write(chunk)
        yield path
    except httpx.HTTPError as exc:
        raise AdvisoryRefused(f"{url[:120]}: cannot be fetched ({type(exc).__name__})") from None
    finally:
        path.unlink(missing_ok=True)


def has_online_source() -> bool:
    from hyac_agent.vulns.sources import SOURCES_ENV

    names = {n.strip() for n in os.environ.get(SOURCES_ENV, "local").split(",")}
    return bool(names & {"osv", "pypi"})


class VulnRefresher:
    """The agent's refresh loop (started and stopped with the agent)."""

    def __init__(self, store: Any, data_dir: Path, interval: float, feeds: list[str],
                 max_bytes: int) -> None:
        self.store = store
        self.data_dir = data_dir
        self.interval = interval
        self.feeds = feeds
        self.max_bytes = max_bytes
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.interval > 0 and (bool(self.feeds) or has_online_source())

    async def start(self) -> None:
        if self.enabled:
            self._task = asyncio.create_task(self._run(), name="vulndb-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def refresh_now(self) -> dict[str, Any]:
        """One refresh (blocking)."""
        from hyac_agent.vulns.service import service_for

        summary = service_for(self.store).refresh(self.feeds, self.data_dir, self.max_bytes)
        log.info("advisory refresh: %d imported, %d functions and %d templates with new "
                 "findings", summary["advisories"], len(summary["rescanned_with_new_findings"]),
                 len(summary["templates_with_new_findings"]))
        return summary

    def _due(self) -> bool:
        from hyac_agent.vulns.service import service_for

        return service_for(self.store).db.claim_refresh(self.interval)

    async def _run(self) -> None:
        # The schedule is kept in the store: a restarted agent refreshes when one is due
        # (not a whole interval after its start), and of several agents sharing the
        # store only one refreshes each time.
        while True:
            try:
                if await asyncio.to_thread(self._due):
                    await asyncio.to_thread(self.refresh_now)
            except Exception:
                log.exception("the advisory refresh failed")
            await asyncio.sleep(min(self.interval, 60.0))
