"""What ``hyac init`` writes: the manifest, a first function and editor settings."""

from __future__ import annotations

import json

TEMPLATES = ("hello", "empty")

MANIFEST = """\
[project]
name = {name}
runtime = {runtime}
tenant = {tenant}

# Every {files} is a function.
# Tune one with a [functions.NAME] table, for example:
#
# [functions.hello]
# timeout = "30s"            # seconds, or a string such as "10m" or "1h"
# memory = "256Mi"
# env = {{ GREETING = "hello" }}
# requirements = []
"""

HELLO = '''\
"""Greets whoever calls it.

    hyac invoke hello --data '{"name": "Ada"}'
    hyac invoke hello --query name=Ada

`FunctionContext` and `Response` are provided by the runtime: no import needed.
"""


async def main(context: FunctionContext):
    name = context.request.query.get("name", "world")
    try:
        payload = context.request.json()  # whatever the content-type: `curl -d` says form
    except ValueError:
        payload = None  # not JSON: keep the name from the query
    if isinstance(payload, dict) and payload.get("name"):
        name = str(payload["name"])
    context.logger.info("greeting %s", name)
    return {"hello": name}
'''

GITIGNORE = """\
__pycache__/
*.py[cod]
.venv/
.env
"""


# mypy reads no __builtins__.pyi: functions checked by mypy import what they use,
# `from hyac_context import FunctionContext` (which also works at run time).
MYPY_INI = """\
[mypy]
mypy_path = {stubs}
files = functions
"""


# VS Code offers to install these when the folder is opened; Pylance then reads
# pyrightconfig.json and typings/ with nothing else to set up.
VSCODE_EXTENSIONS = """\
{
  "recommendations": ["ms-python.python", "ms-python.vscode-pylance"]
}
"""


# What a function file is called, per runtime family (the manifest's comment says it).
FUNCTION_FILES = {
    "python": "functions/NAME.py (or functions/NAME/main.py)",
    "node": "functions/NAME.js (or functions/NAME/index.js)",
    "deno": "functions/NAME.ts or .js (or functions/NAME/index.ts)",
    "java": "functions/Name.java, class Name with handle(Context) (or functions/name/Main.java)",
}


HELLO_JAVA = """\
// Greets whoever calls it.
//
//     hyac invoke hello --data '{"name": "Ada"}'
//     hyac invoke hello --query name=Ada
//
// `Context` is declared by typings/java/Context.java (generated from the runtime): javac
// and IDEs check `context.` with no import. The agent compiles this file at deploy.

import java.util.Map;

public class Hello {
    public static Object handle(Context context) {
        String name = context.request.query.getOrDefault("name", "world");
        Object body = context.request.json();
        if (body instanceof Map && ((Map<?, ?>) body).get("name") instanceof String) {
            name = (String) ((Map<?, ?>) body).get("name");
        }
        context.logger.info("greeting %s", name);
        return Map.of("hello", name);
    }
}
"""

# VS Code's Java extension: the functions and the generated Context declaration as
# source folders of one unmanaged project.
VSCODE_JAVA_SETTINGS = """\
{
  "java.project.sourcePaths": ["functions", "typings/java"]
}
"""


def manifest(name: str, runtime: str, tenant: str = "default") -> str:
    family = next((f for f in FUNCTION_FILES if runtime.startswith(f)), "python")
    return MANIFEST.format(name=json.dumps(name), runtime=json.dumps(runtime),
                           tenant=json.dumps(tenant), files=FUNCTION_FILES[family])


def pyright_config(runtime: str, stubs_dir: str) -> str:
    config: dict[str, object] = {
        "stubPath": stubs_dir,
        "include": ["functions"],
        "typeCheckingMode": "standard",
    }
    version = runtime.removeprefix("python").removesuffix("-wasm")  # python3.12-wasm: 3.12
    if version.replace(".", "").isdigit():
        config["pythonVersion"] = version
    return json.dumps(config, indent=2) + "\n"


def vscode_settings(existing: str | None, stubs_dir: str) -> str | None:
    """settings.json with ``python.analysis.stubPath`` set; None if ``existing`` is not JSON."""
    settings: object = {}
    if existing and existing.strip():
        try:
            settings = json.loads(existing)
        except ValueError:
            return None
    if not isinstance(settings, dict):
        return None
    settings["python.analysis.stubPath"] = stubs_dir
    return json.dumps(settings, indent=2) + "\n"


HELLO_JS = """\
// Greets whoever calls it.
//
//     hyac invoke hello --data '{"name": "Ada"}'
//     hyac invoke hello --query name=Ada
//
// `context` is typed by typings/hyac_context.d.ts: no import needed.

/** @param {FunctionContext} context */
export async function main(context) {
  let name = context.request.query.name ?? "world";
  let payload = null;
  try {
    payload = context.request.json(); // whatever the content-type: `curl -d` says form
  } catch {
    // not JSON: keep the name from the query
  }
  if (payload && payload.name) name = String(payload.name);
  context.logger.info("greeting %s", name);
  return { hello: name };
}
"""

HELLO_TS = """\
// Greets whoever calls it.
//
//     hyac invoke hello --data '{"name": "Ada"}'
//     hyac invoke hello --query name=Ada
//
// `FunctionContext` is declared by typings/hyac_context.d.ts: no import needed.

export async function main(context: FunctionContext) {
  let name = context.request.query.name ?? "world";
  let payload: { name?: string } | null = null;
  try {
    payload = context.request.json<{ name?: string }>(); // whatever the content-type
  } catch {
    // not JSON: keep the name from the query
  }
  if (payload?.name) name = String(payload.name);
  context.logger.info("greeting %s", name);
  return { hello: name };
}
"""
