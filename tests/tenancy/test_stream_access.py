"""Streams end when their reader loses access. A log stream (``hyac logs -f``, the
console's live logs) or a task's event stream is authorised when it opens; it must not
go on serving a token revoked since, a member removed since, or a tenant removed and
made again under its name for someone else. Each attack first works (the stream
delivers), then the access goes, then nothing more arrives and reopening is refused."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

from tests.tenancy.conftest import Platform
from tests.waiting import eventually

CHATTY = "def main(context):\n    print('line for', context.request.query.get('who'))\n"
SLOW = "import time\n\ndef main(context):\n    time.sleep(20)\n"


class Reader:
    """A stream read on a thread: its events' data, and whether it has ended."""

    def __init__(self, platform: Platform, token: str, tenant: str, path: str,
                 **params: str) -> None:
        self.url = f"{platform.agent.url}{path}"
        self.headers = {"Authorization": f"Bearer {token}", "X-Hyac-Tenant": tenant}
        self.params = params
        self.data: list[Any] = []
        self.opened = threading.Event()
        self.ended = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=60))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.opened.wait(20), "the stream did not open"

    def _read(self) -> None:
        try:
            with self._client.stream("GET", self.url, params=self.params,
                                     headers=self.headers) as stream:
                assert stream.status_code == 200, stream.read()
                for line in stream.iter_lines():
                    self.opened.set()
                    if line.startswith("data:"):
                        self.data.append(json.loads(line[5:]))
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def reopen_status(self) -> int:
        with self._client.stream("GET", self.url, params=self.params,
                                 headers=self.headers) as stream:
            return stream.status_code

    def close(self) -> None:
        self._client.close()


def token_id(platform: Platform, token: str) -> str:
    with platform.http(token) as client:
        listed = client.get("/v1/tokens").json()
    return str(next(t["id"] for t in listed if t["user"].startswith("reader-")))


def lose_access(platform: Platform, tenant: str, user: str, token: str, how: str) -> None:
    with platform.owner(tenant) as owner:
        if how == "token revoked":
            assert owner.delete(f"/v1/tokens/{token_id(platform, token)}").status_code == 200
        elif how == "member removed":
            assert owner.delete(f"/v1/users/{user}").status_code == 204
        else:
            with platform.owner() as root:
                assert root.delete(f"/v1/tenants/{tenant}").status_code == 204
            platform.tenant(tenant)  # made again, for someone else


def test_a_log_stream_ends_when_its_reader_loses_access(platform: Platform) -> None:
    for how in ("token revoked", "member removed", "tenant removed"):
        tenant, user = f"logs-{how.split()[0]}", f"reader-{how.split()[0]}"
        platform.tenant(tenant)
        token = platform.user(user, tenant, "viewer")
        assert platform.deploy("chatty", CHATTY, tenant).status_code == 201
        reader = Reader(platform, token, tenant, "/v1/logs/stream", function="chatty")
        try:
            assert platform.invoke("chatty", tenant, query={"who": "before"}).status_code == 200
            eventually(lambda: any("before" in d["message"] for d in reader.data))  # noqa: B023
            lose_access(platform, tenant, user, token, how)
            assert reader.ended.wait(30), f"{how}: the stream went on"
            if how == "tenant removed":
                assert platform.deploy("chatty", CHATTY, tenant).status_code == 201
            assert platform.invoke("chatty", tenant, query={"who": "after"}).status_code == 200
            assert not [d for d in reader.data if "after" in d["message"]], how
            assert reader.reopen_status() in (401, 403), how
        finally:
            reader.close()


def test_a_task_stream_ends_when_its_reader_loses_access(platform: Platform) -> None:
    tenant, user = "tasks-stream", "reader-tasks"
    platform.tenant(tenant)
    token = platform.user(user, tenant, "viewer")
    assert platform.deploy("slow", SLOW, tenant, timeout=60).status_code == 201
    with platform.owner(tenant) as owner:
        queued = owner.post("/v1/functions/slow/invoke", params={"mode": "async"}, json={})
        assert queued.status_code == 202, queued.text
        task = queued.json()["task_id"]
        reader = Reader(platform, token, tenant, f"/v1/tasks/{task}/events")
        try:
            eventually(lambda: reader.data)
            lose_access(platform, tenant, user, token, "member removed")
            assert reader.ended.wait(30), "the stream went on"
            assert reader.reopen_status() in (401, 403)
            assert owner.get(f"/v1/tasks/{task}").json()["status"] not in (
                "succeeded", "dead", "cancelled"), "the task ended: the stream ended with it"
        finally:
            reader.close()
            owner.post(f"/v1/tasks/{task}/cancel")


def test_a_user_holds_only_so_many_streams_open(platform: Platform) -> None:
    """An account opening streams until the agent runs out of file descriptors for
    everyone: past HYAC_STREAMS_PER_USER (16) it gets 429, a one-line JSON error; a
    stream it closes frees its slot; other users and the owner are not held back."""
    tenant = "streams-cap"
    platform.tenant(tenant)
    greedy = platform.user("reader-greedy", tenant, "viewer")
    other = platform.user("reader-other", tenant, "viewer")
    readers = [Reader(platform, greedy, tenant, "/v1/logs/stream") for _ in range(16)]
    try:
        with platform.http(greedy, tenant) as client:
            with client.stream("GET", "/v1/logs/stream") as refused:
                assert refused.status_code == 429, "the 17th stream opened"
                error = json.loads(refused.read())["error"]
            assert error["code"] == "too_many_streams" and "16" in error["message"], error
            with client.stream("GET", "/v1/logs/stream", params={"since": "0"}) as refused:
                assert refused.status_code == 429  # with a backlog to read too
            assert client.get("/v1/logs").status_code == 200  # other requests still served
        for token in (other, platform.agent.token):
            extra = Reader(platform, token, tenant, "/v1/logs/stream")
            assert not extra.ended.is_set()
            extra.close()
        readers.pop().close()

        def reopened() -> bool:
            with platform.http(greedy, tenant) as client, client.stream(
                    "GET", "/v1/logs/stream") as stream:
                return stream.status_code == 200

        eventually(reopened)
    finally:
        for reader in readers:
            reader.close()
