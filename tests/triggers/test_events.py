"""Events: storage puts and deletes of the tenant (by key prefix) and task outcomes of
another function run subscribers as tasks with the event as body; loops are cut at the
depth limit (HYAC_TRIGGER_MAX_DEPTH=3 here) and logged; subscriptions stay in their
tenant."""

from __future__ import annotations

import base64
import json

from tests.tenancy.conftest import Platform
from tests.waiting import eventually

SEEN = "def main(context):\n    return context.request.json()\n"
#: writes the next key under the prefix it watches: a loop through storage
COPIER = """
def main(context):
    event = context.request.json()
    n = int(event["key"].rsplit("/", 1)[1])
    context.storage.put(f"loop/{n + 1}", b"x")
    return {"wrote": n + 1}
"""


def _finished(platform: Platform, tenant: str, function: str, count: int) -> list[dict]:
    def done() -> list[dict] | None:
        with platform.owner(tenant) as client:
            tasks = client.get("/v1/tasks", params={"function": function}).json()
        ended = [t for t in tasks if t["status"] in ("succeeded", "dead")]
        return ended if len(ended) >= count else None

    return eventually(done)  # type: ignore[no-any-return]


def _result(task: dict) -> object:
    return json.loads(base64.b64decode(task["result"]["body_b64"]))


def test_storage_put_and_delete_under_the_prefix_run_the_subscriber(platform: Platform) -> None:
    platform.tenant("ev-storage")
    assert platform.deploy("seen", SEEN, "ev-storage").status_code == 201
    with platform.owner("ev-storage") as client:
        made = client.post("/v1/triggers", json={
            "function": "seen", "source": "storage", "events": ["put", "delete"],
            "prefix": "uploads/"})
        assert made.status_code == 201, made.text
        assert client.put("/v1/storage/other/a.txt", content=b"no").status_code in (200, 201)
        assert client.put("/v1/storage/uploads/a.txt", content=b"hello").status_code in (200, 201)
        assert client.delete("/v1/storage/uploads/a.txt").status_code in (200, 204)
    tasks = _finished(platform, "ev-storage", "seen", 2)
    events = sorted((_result(t)["event"], _result(t)["key"]) for t in tasks)  # type: ignore[index]
    assert events == [("delete", "uploads/a.txt"), ("put", "uploads/a.txt")]
    put = next(t for t in tasks if _result(t)["event"] == "put")  # type: ignore[index]
    assert _result(put)["size"] == 5  # type: ignore[index]
    assert put["trigger"] == {"kind": "storage", "id": made.json()["id"], "event": "put",
                              "depth": 1}


def test_a_storage_loop_is_cut_at_the_depth_limit_and_logged(platform: Platform) -> None:
    platform.tenant("ev-loop")
    assert platform.deploy("copier", COPIER, "ev-loop",
                           on={"storage": {"events": ["put"], "prefix": "loop/"}}).status_code == 201
    with platform.owner("ev-loop") as client:
        [listed] = client.get("/v1/triggers").json()
        assert listed["subscriptions"][0]["origin"] == "manifest"
        assert client.put("/v1/storage/loop/0", content=b"x").status_code in (200, 201)
        logs = eventually(lambda: [
            line for line in client.get("/v1/logs", params={"function": "copier"}).json()
            if "over the limit of 3" in line["message"]])
        keys = [o["key"] for o in client.get("/v1/storage").json()]
        tasks = client.get("/v1/tasks", params={"function": "copier"}).json()
    assert sorted(t["trigger"]["depth"] for t in tasks) == [1, 2, 3]
    assert keys == ["loop/0", "loop/1", "loop/2", "loop/3"]
    assert "a loop?" in logs[0]["message"]


def test_task_outcomes_of_another_function_run_the_subscriber(platform: Platform) -> None:
    platform.tenant("ev-task")
    assert platform.deploy("work", "def main(context):\n    return {'ok': 1}\n",
                           "ev-task").status_code == 201
    assert platform.deploy("fails", "def main(context):\n    raise ValueError('no')\n",
                           "ev-task").status_code == 201
    assert platform.deploy("watcher", SEEN, "ev-task",
                           on={"task": [{"function": "work", "events": ["succeeded"]},
                                        {"function": "fails", "events": ["dead"]}]}
                           ).status_code == 201
    with platform.owner("ev-task") as client:
        for name in ("work", "fails"):
            answer = client.post(f"/v1/functions/{name}/invoke", params={"mode": "async"},
                                 json={"body_b64": ""})
            assert answer.status_code == 202, answer.text
    tasks = _finished(platform, "ev-task", "watcher", 2)
    seen = sorted((_result(t)["function"], _result(t)["event"],  # type: ignore[index]
                   _result(t)["task"]["status"]) for t in tasks)  # type: ignore[index]
    assert seen == [("fails", "dead", "dead"), ("work", "succeeded", "succeeded")]


def test_a_function_watching_its_own_outcomes_stops_at_the_limit(platform: Platform) -> None:
    platform.tenant("ev-self")
    assert platform.deploy("again", SEEN, "ev-self").status_code == 201
    with platform.owner("ev-self") as client:
        made = client.post("/v1/triggers", json={
            "function": "again", "source": "task", "watched": "again", "events": ["succeeded"]})
        assert made.status_code == 201, made.text
        client.post("/v1/functions/again/invoke", params={"mode": "async"},
                    json={"body_b64": base64.b64encode(b"{}").decode()})
        eventually(lambda: any("over the limit" in line["message"] for line in
                               client.get("/v1/logs", params={"function": "again"}).json()))
        tasks = client.get("/v1/tasks", params={"function": "again"}).json()
    assert sorted((t["trigger"] or {}).get("depth", 0) for t in tasks) == [0, 1, 2, 3]


def test_bad_subscriptions_are_refused_and_nothing_is_saved(platform: Platform) -> None:
    platform.tenant("ev-bad")
    platform.tenant("ev-elsewhere")
    assert platform.deploy("mine", SEEN, "ev-bad").status_code == 201
    assert platform.deploy("theirs", SEEN, "ev-elsewhere").status_code == 201
    with platform.owner("ev-bad") as client:
        for body, status in [
            ({"function": "mine", "source": "task", "watched": "theirs"}, 404),
            ({"function": "mine", "source": "task", "watched": "ev-elsewhere/theirs"}, 400),
            ({"function": "mine", "source": "task"}, 400),
            ({"function": "mine", "source": "storage", "events": ["created"]}, 400),
            ({"function": "missing", "source": "storage"}, 404),
            ({"function": "mine", "source": "queue"}, 422),
        ]:
            answer = client.post("/v1/triggers", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert answer.json()["error"]["message"]
        assert client.get("/v1/triggers").json() == []
    # A deploy whose [functions.NAME.on] names an unknown event is refused whole.
    refused = platform.deploy("mine", SEEN + "# 2\n", "ev-bad",
                              on={"storage": {"events": ["created"]}})
    assert refused.status_code in (400, 422), refused.text


def test_storage_events_stay_in_their_tenant(platform: Platform) -> None:
    platform.tenant("ev-a")
    platform.tenant("ev-b")
    assert platform.deploy("seen", SEEN, "ev-a", on={"storage": {}}).status_code == 201
    assert platform.deploy("marker", SEEN, "ev-a").status_code == 201
    with platform.owner("ev-b") as client:
        assert client.put("/v1/storage/x", content=b"b's").status_code in (200, 201)
    with platform.owner("ev-a") as client:
        assert client.put("/v1/storage/y", content=b"a's").status_code in (200, 201)
    tasks = _finished(platform, "ev-a", "seen", 1)
    assert [_result(t)["key"] for t in tasks] == ["y"]  # type: ignore[index]
