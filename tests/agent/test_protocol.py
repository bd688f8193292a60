"""The worker protocol's version: one in hyac_common/protocol.py, the same in every shipped
bootstrap, and a runtime that speaks another major version is refused as a load error."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from hyac_common import protocol
from tests.conftest import AgentClient
from tests.runtime_families.conftest import requires_runtime

REPO = Path(__file__).resolve().parents[2]
NODE = REPO / "runtimes" / "node"


def test_every_shipped_bootstrap_speaks_the_agents_version() -> None:
    python = (REPO / "runtimes" / "python" / "_hyac_protocol.py").read_text()
    node = (NODE / "bootstrap.mjs").read_text()
    assert re.findall(r'^PROTOCOL_VERSION = "([^"]+)"$', python, re.M) == [protocol.PROTOCOL_VERSION]
    assert re.findall(r'^const PROTOCOL_VERSION = "([^"]+)";$', node, re.M) == [protocol.PROTOCOL_VERSION]
    for code in protocol.RESULT_ERROR_CODES:
        assert f'= "{code}"' in python
    assert f'code: "{protocol.OUTPUT_TOO_LARGE}"' in node


def test_only_another_major_version_is_a_problem() -> None:
    assert protocol.version_problem(protocol.PROTOCOL_VERSION) is None
    assert protocol.version_problem(f"{protocol.major(protocol.PROTOCOL_VERSION)}.99") is None
    assert "worker protocol 2.0" in (protocol.version_problem("2.0") or "")
    assert "no worker protocol version" in (protocol.version_problem(None) or "")
    assert protocol.version_problem("one") is not None


def _runtime_speaking(version: str) -> dict[str, str]:
    """The node runtime's folder as a family of its own whose bootstrap says ``version``."""
    bootstrap = (NODE / "bootstrap.mjs").read_text()
    said = f'const PROTOCOL_VERSION = "{protocol.PROTOCOL_VERSION}";'
    assert said in bootstrap
    files = {
        "runtime.toml": 'name = "oldproto"\nlanguage = "javascript"\nbootstrap = "bootstrap.mjs"\n'
                        'interpreter = "node"\nsearch = ["/usr/local/bin/node", "/usr/bin/node"]\n'
                        'version_args = ["--version"]\nversion_pattern = "^v\\\\d+\\\\."\n',
        "bootstrap.mjs": bootstrap.replace(said, f'const PROTOCOL_VERSION = "{version}";'),
        "hyac_context.mjs": (NODE / "hyac_context.mjs").read_text(),
    }
    return {path: base64.b64encode(text.encode()).decode() for path, text in files.items()}


@requires_runtime("node20")
def test_a_runtime_speaking_another_major_version_is_refused(api_agent: AgentClient) -> None:
    with api_agent.client() as client:
        added = client.post("/v1/runtimes", json={"files_b64": _runtime_speaking("2.0")})
        assert added.status_code == 201, added.text
        source = base64.b64encode(b"export function main() { return 'hi'; }\n").decode()
        deployed = client.put("/v1/functions/old", json={
            "entry": "functions/old.mjs", "files_b64": {"functions/old.mjs": source},
            "config": {"runtime": "oldproto"}})
        assert deployed.status_code == 201, deployed.text
        answer = client.post("/v1/functions/old/invoke", json={})
    assert answer.status_code == 500, answer.text
    error = answer.json()["error"]
    assert error["code"] == "function_load_error" and error["type"] == "ProtocolMismatch"
    assert "worker protocol 2.0" in error["message"] and "oldproto" in error["message"]
