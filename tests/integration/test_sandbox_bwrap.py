"""The bubblewrap sandbox keeps a function away from the host and the agent."""

from __future__ import annotations

import base64
import json

from tests.conftest import RunningAgent

PROBE = """
import json, os, socket

def attempt(fn):
    try:
        return {"ok": True, "value": fn()}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}

def read(path):
    with open(path, "rb") as fh:
        return fh.read(200).decode("latin-1")

def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    sock.close()
    return "connected"

def main(context):
    q = context.request.query
    return {
        "uid": os.getuid(),
        "environ": dict(os.environ),
        "shadow": attempt(lambda: read("/etc/shadow")),
        "token": attempt(lambda: read(q["token_path"])),
        "db": attempt(lambda: read(q["db_path"])),
        "data_dir": attempt(lambda: os.listdir(q["data_dir"])),
        "agent_port": attempt(lambda: connect(int(q["port"]))),
        "write_code": attempt(lambda: open("/code/x", "w").write("x")),
        "write_usr": attempt(lambda: open("/usr/x", "w").write("x")),
        "write_tmp": attempt(lambda: open("/tmp/x", "w").write("x")),
        "pid1": attempt(lambda: read("/proc/1/cmdline")),
        "processes": len([p for p in os.listdir("/proc") if p.isdigit()]),
        "hostname": socket.gethostname(),
    }
"""


def test_function_cannot_see_the_host_or_the_agent(agent: RunningAgent) -> None:
    agent.deploy("probe", PROBE)
    port = agent.url.rsplit(":", 1)[1]
    answer = agent.invoke("probe", query={
        "token_path": str(agent.data_dir / "agent.token"),
        "db_path": str(agent.data_dir / "hyac.db"),
        "data_dir": str(agent.data_dir),
        "port": port,
    })
    seen = json.loads(base64.b64decode(answer.json()["body_b64"]))
    assert seen["uid"] != 0
    assert not seen["shadow"]["ok"]
    assert not seen["token"]["ok"] and not seen["db"]["ok"] and not seen["data_dir"]["ok"]
    assert not seen["agent_port"]["ok"], "the sandbox has no network"
    assert not seen["write_code"]["ok"] and not seen["write_usr"]["ok"]
    assert seen["write_tmp"]["ok"]
    assert agent.token not in json.dumps(seen["environ"])
    assert not any(k.startswith("HYAC_DATA") for k in seen["environ"])
    assert "hyac-agent" not in seen["pid1"].get("value", "") and "serve" not in seen["pid1"].get("value", "")
    assert seen["processes"] <= 3, "only the sandbox's own processes are visible"
    assert seen["hostname"] == "hyac"


def test_function_env_is_passed_and_nothing_else(agent: RunningAgent) -> None:
    agent.deploy("envy", "import os\ndef main(context):\n    return {'ctx': dict(context.env), 'os': os.environ.get('REGION')}\n", env={"REGION": "eu"})
    seen = json.loads(base64.b64decode(agent.invoke("envy").json()["body_b64"]))
    assert seen["ctx"] == {"REGION": "eu"}
    assert seen["os"] == "eu"


def test_other_functions_code_is_not_visible(agent: RunningAgent) -> None:
    agent.deploy("secretive", "SECRET = 'swordfish'\ndef main(context):\n    return SECRET\n")
    agent.deploy("snoop", """
import os, sys
def main(context):
    found = []
    skip = ("/proc", "/usr", "/sys", "/dev", sys.base_prefix)  # system files and the interpreter
    for folder, dirs, files in os.walk("/"):
            if folder.startswith(skip):
                dirs[:] = []
                continue
            for name in files:
                try:
                    with open(os.path.join(folder, name), "rb") as fh:
                        if b"sword" + b"fish" in fh.read(1 << 20):
                            found.append(os.path.join(folder, name))
                except OSError:
                    pass
    return found
""", timeout=60)
    assert json.loads(base64.b64decode(agent.invoke("snoop").json()["body_b64"])) == []
