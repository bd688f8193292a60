"""The task callbacks' SSRF rules hold for channel URLs: with the default policy no
loopback, private, link-local or metadata address in any spelling, nor a name that
resolves to one (checked when it is sent)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.in_process import InProcessAgent
from tests.notify.conftest import agent_with
from tests.waiting import eventually


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessAgent]:
    with agent_with(tmp_path_factory.mktemp("strict-agent"), HYAC_NOTIFY_TIMEOUT="2") as running:
        yield running


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8040/v1/health", "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook", "http://0x7f.1/hook", "http://10.0.0.7/hook",
    "http://[::ffff:127.0.0.1]/hook", "http://2130706433/hook",
])
def test_a_literal_internal_address_is_refused_at_once(strict: InProcessAgent, url: str) -> None:
    with strict.client() as client:
        answer = client.post("/v1/notify/channels", json={"name": "probe", "type": "slack",
                                                           "url": url})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "callback_refused"
        assert client.get("/v1/notify/channels").json() == []


def test_a_name_resolving_to_loopback_is_refused_when_sent(strict: InProcessAgent) -> None:
    with strict.client() as client:
        assert client.post("/v1/notify/channels", json={
            "name": "sneaky", "type": "webhook", "url": "http://localhost:8040/v1/health",
        }).status_code == 201
        sent = client.post("/v1/notify/channels/sneaky/test").json()["id"]

        def failed() -> dict | None:
            for row in client.get("/v1/notify/deliveries").json():
                if row["id"] == sent and row["status"] == "failed":
                    return row  # type: ignore[no-any-return]
            return None

        row = eventually(failed)
    assert row["attempts"] == 1 and "loopback" in row["last_error"]
