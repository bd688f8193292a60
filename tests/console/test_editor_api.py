"""The console editor's API: completion, hover and diagnostics with the shim of ``hyac
stubs`` prepended in memory and the tenant's real names; hostile input refused with 4xx;
save deploys through the ordinary path, refused when the active version moved."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest

from hyac_agent.editor import EditorService, Query
from hyac_common.errors import AnalysisTimeout
from hyac_common.stubs import ProjectFacts, build_stubs
from tests.conftest import AgentClient
from tests.console.conftest import make_user

SOURCE = (
    "import json\n"
    "\n"
    "def main(context):\n"
    "    context.logger.info('hi')\n"
    "    return {'ok': json.dumps(1)}\n"
)
ENTRY = "functions/edited.py"


def _at(source: str, marker: str) -> dict[str, object]:
    """The position just after the first ``marker`` in ``source``."""
    before = source[: source.index(marker) + len(marker)]
    lines = before.split("\n")
    return {"source": source, "line": len(lines), "column": len(lines[-1])}


def _with_line(text: str) -> str:
    return SOURCE.replace("    context.logger.info('hi')\n", f"    {text}\n")


def test_completion_hover_and_diagnostics_know_the_context(api_agent: AgentClient) -> None:
    api_agent.deploy("edited", SOURCE, env={"REGION": "eu"})
    api_agent.deploy("other-fn", SOURCE)
    with api_agent.client() as client:
        assert client.put("/v1/env", json={"values": {"API_BASE": "x"}}).status_code == 200
        assert client.put("/v1/secrets/STRIPE_KEY", json={"value": "sk"}).status_code == 204
        viewer = make_user(api_agent, "vera", "default", "viewer")

        def post(path: str, **body: object) -> httpx.Response:
            return client.post(f"/v1/editor/{path}", json={"function": "edited", "file": ENTRY,
                                                           **body})

        source = _with_line("context.")
        items = post("complete", **_at(source, "context.")).json()["items"]
        labels = {i["label"] for i in items}
        assert {"kv", "storage", "mail", "env", "secrets", "invoke"} <= labels, labels
        kv = next(i for i in items if i["label"] == "kv")
        assert kv["insert_text"] == "kv" and kv["replace"] == 0 and kv["kind"]
        source = _with_line("context.st")
        storage = post("complete", **_at(source, "context.st")).json()["items"]
        assert ("storage", "storage", 2) in {(i["label"], i["insert_text"], i["replace"])
                                             for i in storage}

        source = _with_line("context.kv.")
        labels = {i["label"] for i in post("complete", **_at(source, "kv.")).json()["items"]}
        assert {"get", "set"} <= labels, labels

        source = _with_line('context.env["')
        env = post("complete", **_at(source, 'env["')).json()["items"]
        assert {i["label"] for i in env} == {"API_BASE", "REGION"}
        source = _with_line('context.secrets["ST')
        secrets = post("complete", **_at(source, '["ST')).json()["items"]
        assert [(i["label"], i["insert_text"], i["replace"]) for i in secrets] == [
            ("STRIPE_KEY", "STRIPE_KEY", 2)]
        source = _with_line('context.invoke("')
        functions = post("complete", **_at(source, 'invoke("')).json()["items"]
        assert {i["label"] for i in functions} == {"edited", "other-fn"}

        hover = post("hover", **_at(SOURCE, "context.log")).json()["hover"]
        assert hover is not None and hover["name"] == "logger", hover

        source = _with_line("context.nonexistent.get('a'); y = undefined_thing")
        found = post("diagnostics", source=source).json()["diagnostics"]
        messages = [(d["line"], d["message"]) for d in found]
        assert any(line == 4 and "nonexistent" in m for line, m in messages), messages
        assert any(line == 4 and "undefined_thing" in m for line, m in messages), messages
        broken = post("diagnostics", source=_with_line("return (")).json()["diagnostics"]
        assert broken[0]["line"] == 4 and broken[0]["message"].startswith("SyntaxError")

    # A viewer completes (without the env and secret names only developers may list).
    with api_agent.http(viewer, "default") as reader:
        body = {"function": "edited", "file": ENTRY, **_at(_with_line('context.env["'), 'env["')}
        answer = reader.post("/v1/editor/complete", json=body)
        assert answer.status_code == 200 and answer.json()["items"] == []
        body = {"function": "edited", "file": ENTRY, **_at(_with_line("context."), "context.")}
        assert "kv" in {i["label"] for i in reader.post("/v1/editor/complete", json=body)
                        .json()["items"]}


def test_hostile_input_is_refused_with_json_errors(api_agent: AgentClient) -> None:
    api_agent.deploy("edited", SOURCE)
    with api_agent.client() as owner:
        assert owner.post("/v1/tenants", json={"name": "rival"}).status_code in (201, 409)
    with api_agent.client("rival") as rival:
        rival.put("/v1/functions/theirs", json={
            "entry": "main.py", "files_b64": {"main.py": "ZGVmIG1haW4oYyk6IHJldHVybiAx"},
        })
    cases: list[tuple[dict[str, object], int]] = [
        ({"source": "x = 1\n" * 100_000}, 422),  # over the 512 KiB cap
        ({"source": "x = 1\x00\n"}, 400),  # binary
        ({"source": SOURCE, "line": 99, "column": 0}, 400),
        ({"source": SOURCE, "line": 1, "column": 500}, 400),
        ({"source": SOURCE, "line": -1}, 422),
        ({"source": SOURCE, "function": "theirs"}, 404),  # another tenant's function
        ({"source": SOURCE, "function": "../etc"}, 400),
    ]
    with api_agent.client() as client:
        for extra, status in cases:
            body: dict[str, object] = {"function": "edited", "file": ENTRY, **extra}
            for path in ("complete", "hover", "diagnostics"):
                answer = client.post(f"/v1/editor/{path}", json=body)
                assert answer.status_code == status, (list(extra), path, answer.text[:200])
                assert set(answer.json()["error"]) >= {"code", "message"}
        # the compiler runs out of memory on this one: a 400, the agent unharmed
        deep = {"function": "edited", "file": ENTRY, "source": "x = " + "-" * 200_000 + "1"}
        assert client.post("/v1/editor/diagnostics", json=deep).status_code == 400
        assert client.post("/v1/editor/diagnostics", json={
            "function": "edited", "file": ENTRY, "source": SOURCE}).json() == {"diagnostics": []}
        # pathological sources: an answer, a 400 (nested too deeply) or, on a host too
        # busy to finish within the cap, the analysis' own time-out; never a 500
        for source in ("(" * 5_000, "[" * 300 + "]" * 300):
            for path in ("complete", "hover", "diagnostics"):
                answer = client.post(f"/v1/editor/{path}", json={
                    "function": "edited", "file": ENTRY, "source": source, "line": 1,
                    "column": len(source)})
                timed_out = answer.status_code == 503 and answer.json()["error"]["code"] == (
                    "analysis_timeout")
                assert answer.status_code in (200, 400) or timed_out, (
                    source[:10], path, answer.text)
        # and the agent still answers a plain source
        assert client.post("/v1/editor/diagnostics", json={
            "function": "edited", "file": ENTRY, "source": SOURCE}).json() == {"diagnostics": []}


def test_save_deploys_and_refuses_a_stale_editor(api_agent: AgentClient) -> None:
    first = api_agent.deploy("edited", SOURCE)["version"]
    viewer = make_user(api_agent, "val", "default", "viewer")
    with api_agent.client() as client:
        opened = client.get("/v1/editor/files/edited").json()
        assert opened["version"] == first and opened["files"][ENTRY] == SOURCE

        def save(text: str, expected: int) -> httpx.Response:
            return client.post("/v1/editor/save", json={
                "function": "edited", "files": {ENTRY: text}, "expected_active_version": expected})

        same = save(SOURCE, first)  # unchanged code makes no version
        assert same.status_code == 200 and same.json()["version"] == first
        changed = SOURCE.replace("'hi'", "'saved'")
        saved = save(changed, first)
        assert saved.status_code == 200 and saved.json()["version"] == first + 1, saved.text
        stale = save(SOURCE.replace("'hi'", "'mine'"), first)  # a second editor, opened at v1
        assert stale.status_code == 409 and stale.json()["error"]["active_version"] == first + 1
        broken = save(_with_line("return ("), first + 1)
        assert broken.status_code == 400 and broken.json()["error"]["line"] == 4
        assert client.get("/v1/editor/files/edited").json()["files"][ENTRY] == changed
        for path in ("../outside.py", "/etc/passwd.txt", "functions/../../up.py", "run.so"):
            escaped = client.post("/v1/editor/save", json={
                "function": "edited", "files": {path: "x = 1\n"},
                "expected_active_version": first + 1})
            assert escaped.status_code == 400, (path, escaped.text)
        assert client.get("/v1/functions/edited").json()["active_version"] == first + 1
    with api_agent.http(viewer, "default") as reader:
        refused = reader.post("/v1/editor/save", json={
            "function": "edited", "files": {ENTRY: "x"}, "expected_active_version": first + 1})
        assert refused.status_code == 403


def test_the_editor_prepends_the_shim_of_hyac_stubs(tmp_path: Path) -> None:
    """One shim: the editor's prelude and stubs are exactly what ``hyac stubs`` writes."""
    facts = ProjectFacts("default", ("a", "b"), ("REGION",), ("KEY",))
    service = EditorService(tmp_path)
    stubs, directory = service.stubs(facts)
    expected = build_stubs(facts=facts)
    assert stubs.prelude() == expected.prelude()
    assert stubs.stale(directory) == [] and stubs.files() == expected.files()
    # and the user's position maps back: completing on line 1 sees the user's line 1
    items = service.complete(Query("import json\njson.du", 2, 7), facts)
    assert [i["label"] for i in items] == ["dump", "dumps"]


def test_the_first_analysis_of_the_agents_life_is_not_held_to_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jedi's first analysis loads its view of the standard library (seconds on a busy
    host, whatever the source): the agent makes it once on a source of its own, and the
    first user's request is capped only for its own analysis."""
    service = EditorService(tmp_path, timeout=0.5)
    real = service._script
    sources: list[str] = []

    def cold_at_first(query: Query, facts: ProjectFacts | None) -> object:
        sources.append(query.source)
        if len(sources) == 1:
            time.sleep(1.5)  # as jedi with an empty cache on a loaded host
        return real(query, facts)

    monkeypatch.setattr(service, "_script", cold_at_first)
    query = Query("import json\njson.du", 2, 7)
    items = asyncio.run(service.run(lambda: service.complete(query, None)))
    assert [i["label"] for i in items] == ["dump", "dumps"]
    assert len(sources) == 2 and sources[1] == query.source


def test_a_slow_analysis_is_cut_off_and_keeps_its_slot(tmp_path: Path) -> None:
    """The time cap answers 503 (analysis_timeout); the thread still running holds its slot, so
    pathological sources cannot pile up threads: with every slot busy, the next waits
    for one, then is refused too."""
    service = EditorService(tmp_path, timeout=0.2, slots=1)
    release = threading.Event()

    async def scenario() -> str:
        with pytest.raises(AnalysisTimeout, match="longer than"):
            await service.run(lambda: release.wait(60))
        with pytest.raises(AnalysisTimeout, match="busy"):
            await service.run(lambda: True)
        release.set()
        for _ in range(1200):  # a ceiling for a stuck run, not a measurement
            try:
                return await service.run(lambda: "done")
            except AnalysisTimeout:  # the released thread has not given its slot back yet
                await asyncio.sleep(0.05)
        raise AssertionError("the slot never came back")

    assert asyncio.run(scenario()) == "done"


def test_analyses_at_once_never_read_each_others_answers(tmp_path: Path) -> None:
    """Jedi is not thread-safe: analyses that ran at once shared the subprocess that
    inspects compiled modules and failed deep inside jedi (a 500 on a loaded host)."""
    service = EditorService(tmp_path / "stubs", timeout=120, slots=4)
    modules = ["math", "os", "json", "zlib", "array", "select", "binascii", "struct",
               "itertools", "_socket", "time", "cmath"]

    async def all_at_once() -> list[object]:
        return await asyncio.gather(*(
            service.run(lambda m=module: service.complete(
                Query(source=f"import {m}\n{m}.", line=2, column=len(m) + 1), None))
            for module in modules
        ), return_exceptions=True)

    answers = asyncio.run(all_at_once())
    failures = [a for a in answers if isinstance(a, BaseException)]
    assert failures == [], failures
    assert all(answers), answers  # every module completed to something
