"""What a Python worker imports at start, and the JSON codec that lets it skip ``json``.

Every sandbox that boots pays its worker's imports before the function's first answer,
so the worker imports the C modules under ``socket``, ``json``, ``base64`` and ``queue``
rather than those packages (which bring ``enum`` and ``re``), and ``traceback`` only
once the first invocation is answered. ``hyac_context``'s ``_json_loads`` and
``_json_dumps`` drive ``json``'s own C accelerator; these tests hold it to ``json`` itself, results and errors alike, on every
supported interpreter, in a fresh process where ``json`` is not imported yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.python_worker.test_bootstrap import RUNTIME_DIR, Worker, body_of, json_of

#: modules a worker must not have imported when it sends ``ready``: each costs every
#: cold start milliseconds (enum and re most of all)
HEAVY = ("enum", "re", "json", "base64", "socket", "traceback", "linecache", "tokenize",
         "queue", "asyncio", "typing", "inspect", "concurrent.futures", "logging")

TEXTS = [
    '{"a": [1, 2.5, -3e10, true, false, null, "x\\u00e9\\ud83d\\ude00"]}', " [1] \n\t", '"s"',
    "1", "NaN", "[-Infinity, Infinity]", '{"a":1}xx', "", "   ", '{"a" 1}', "[1,]", '"\\ud800"',
    "123456789012345678901234567890", "1.5e400", '{"k": {"k": "v"}, "k2": {"k": "w"}}', '"\x01"',
    "\ufeff[1]", '"\\x"', "{nope", "[1,", "-", "tru", '{"a": 1, "a": 2}',
]
RAW = [b"\xff\xfe[\x001\x00]\x00", "[1]".encode("utf-16-le"), "[1]".encode("utf-32"), b"\xc3(",
       b"\xef\xbb\xbf[1]", '{"\xe9": 1}'.encode()]

COMPARE = r"""
import json, sys  # (the next test checks errors where json is not imported)
sys.path.insert(0, sys.argv[1])
import hyac_context

texts, raw = json.loads(sys.argv[2]), [bytes.fromhex(h) for h in json.loads(sys.argv[3])]
assert hyac_context._json_scan is not None, "the C accelerator was not used"

def outcome(call, *args, **kwargs):
    try:
        return ["ok", repr(call(*args, **kwargs))]
    except Exception as exc:
        return ["error", type(exc).__name__, str(exc)]

mine = [outcome(hyac_context._json_loads, t) for t in texts]
mine += [outcome(hyac_context._json_loads, t.encode("utf-8", "surrogatepass")) for t in texts]
mine += [outcome(hyac_context._json_loads, r) for r in raw]

class Text(str): pass
class Number(int): pass
circular = []
circular.append(circular)
values = [{"a": [1, 2.5, None, True, "\u00e9\U0001F600", Text("x"), Number(3)], "b": {"c": ()}},
          "x\n\"", 1.0, float("nan"), float("inf"), {1: 2, 2.5: 3, None: 4, True: 5}, {(1,): 2},
          object(), circular, [set()], 10 ** 20, -0.0]
options = [{}, {"ensure_ascii": False, "allow_nan": False},
           {"separators": (",", ":"), "ensure_ascii": False, "allow_nan": False}]
mine += [outcome(hyac_context._json_dumps, v, **o) for v in values for o in options]

theirs = [outcome(json.loads, t) for t in texts]
theirs += [outcome(json.loads, t.encode("utf-8", "surrogatepass")) for t in texts]
theirs += [outcome(json.loads, r) for r in raw]
theirs += [outcome(json.dumps, v, **o) for v in values for o in options]
# object() and the circular list have no stable repr across the two calls
print(json.dumps([[a, b] for a, b in zip(mine, theirs) if a != b and "object at" not in str(a)]))
"""


def test_the_codec_answers_as_json_does(python: str) -> None:
    """Results, error types and messages (line and column) are json's, for valid and
    broken texts, bytes in other encodings, and values json refuses."""
    done = subprocess.run(
        [python, "-I", "-c", COMPARE, str(RUNTIME_DIR), json.dumps(TEXTS),
         json.dumps([r.hex() for r in RAW])],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_a_broken_text_is_a_json_error_before_json_is_imported(python: str) -> None:
    """3.10 and 3.11's scanner fails with a SystemError when json.decoder is not loaded."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import hyac_context\n"
            "try:\n    hyac_context._json_loads(b'{nope')\n"
            "except ValueError as exc:\n    print(type(exc).__name__, exc)\n")
    done = subprocess.run([python, "-I", "-c", code, str(RUNTIME_DIR)],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == (
        "JSONDecodeError Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    ), done.stderr


SNAPSHOT = """
import sys
FIRST = sorted(sys.modules)  # at load: what the worker itself had imported
def main(context):
    return FIRST
"""


def test_the_worker_starts_without_the_heavy_modules(start: Callable[..., Worker]) -> None:
    """When the function's module runs, none of HEAVY is loaded: the worker got there
    with the C modules alone (``-S``: no site hook of the host imports them either)."""
    worker = start({"functions/hello.py": SNAPSHOT}, interpreter_args=("-I", "-S", "-B"))
    loaded = set(json_of(worker.call()))
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert {"_json", "_socket"} <= loaded


FAILS_FIRST = """
# -*- coding: latin-1 -*-
def main(context):
    # a comment, caf\xe9
    raise ValueError('first call')
"""


def test_the_first_failure_has_its_full_traceback(start: Callable[..., Worker]) -> None:
    """traceback is not loaded when the first invocation fails: the failure loads it,
    and the report holds the user's frame with its source line, as before."""
    worker = start({"functions/hello.py": FAILS_FIRST.lstrip()})
    error = worker.call()["error"]
    assert error["type"] == "ValueError"
    assert 'File "functions/hello.py", line 4, in main' in error["traceback"], error
    assert "raise ValueError('first call')" in error["traceback"], error


def test_an_entry_in_an_unknown_coding_is_an_init_error(start: Callable[..., Worker]) -> None:
    """The worker reads the entry's coding only when it formats a failure; a coding that
    does not exist is the function's load error, not a crash of the worker."""
    worker = start({"functions/hello.py": "# -*- coding: no-such-codec -*-\n"
                    "def main(context):\n    return 1\n"}, expect_ready=False)
    answer = worker.startup()
    assert answer["type"] == "init_error", answer
    assert answer["error"]["type"] == "SyntaxError"
    assert "no-such-codec" in answer["error"]["message"]


def test_bare_format_without_traceback() -> None:
    """Out of memory before traceback could be imported: the report still names the
    user's frames and the error, without source lines."""
    sys.path.insert(0, str(RUNTIME_DIR))
    try:
        from _hyac_errors import UserTracebacks
    finally:
        sys.path.remove(str(RUNTIME_DIR))
    here = Path(__file__).resolve()
    errors = UserTracebacks(str(here.parent), here.name, str(RUNTIME_DIR))

    def inner() -> None:
        raise MemoryError("no room")

    try:
        inner()
    except MemoryError as exc:
        text = errors._bare_format(exc)
    assert text.startswith("Traceback (most recent call last):\n")
    assert f'File "{here.name}", line' in text and "in inner" in text
    assert text.endswith("MemoryError: no room\n")


@pytest.mark.parametrize("body", [b"", b"\x00\xffbinary", "\u00e9".encode() * 1000])
def test_bodies_cross_base64_unchanged(start: Callable[..., Worker], body: bytes) -> None:
    """base64 is binascii's now, both ways."""
    worker = start({"functions/hello.py":
                    "def main(context):\n    return Response(body=context.request.body)\n"})
    assert body_of(worker.call(raw_body=body)) == body


LIMITS = """
import os, resource
def main(context):
    return {name: list(resource.getrlimit(getattr(resource, name)))
            for name in ("RLIMIT_FSIZE", "RLIMIT_CORE", "RLIMIT_NOFILE")} | {
        "env": "HYAC_RLIMITS" in os.environ}
"""


def test_the_worker_sets_the_limits_it_is_given(start: Callable[..., Worker]) -> None:
    """HYAC_RLIMITS: soft and hard alike, set before the function loads (a process the
    function starts inherits them), and not left in the function's environment."""
    worker = start({"functions/hello.py": LIMITS},
                   process_env={"HYAC_RLIMITS": "fsize:1048576,core:0,nofile:256"})
    seen = json_of(worker.call())
    assert seen == {"RLIMIT_FSIZE": [1048576, 1048576], "RLIMIT_CORE": [0, 0],
                    "RLIMIT_NOFILE": [256, 256], "env": False}


@pytest.mark.parametrize("spec", ["fsize:lots", "stack:1", "nofile:99999999999"])
def test_limits_that_cannot_be_set_stop_the_worker(start: Callable[..., Worker], spec: str) -> None:
    """Fail closed: the function never runs without the limits it was meant to have."""
    worker = start({"functions/hello.py": "def main(context):\n    return 1\n"},
                   process_env={"HYAC_RLIMITS": spec}, expect_ready=False)
    assert worker.wait() == 2
    assert b"cannot set the limits" in worker.proc.stderr.read()
