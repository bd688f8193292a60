"""The worker protocol: every frame between the agent and a runtime's bootstrap, typed.

docs/protocol.md says what each frame means; this module is the same contract for code
(the agent builds and reads frames with these types; a runtime's author reads them as
the list of fields). A frame is a 4-byte big-endian length and that many bytes of UTF-8
JSON holding one object with a ``type``.

The protocol has a version, ``MAJOR.MINOR``: ``init`` carries the agent's and ``ready``
(and ``init_error``) the runtime's. A minor version adds optional fields only; the agent
refuses, as a load error, a runtime that speaks another major version or none.

The runtimes cannot import this module (they run inside the sandbox with no Hyac
package): runtimes/python/_hyac_protocol.py and runtimes/node/bootstrap.mjs hold the
same ``PROTOCOL_VERSION``, and a test holds them to it.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

PROTOCOL_VERSION = "1.0"
#: the largest frame either side sends or takes
MAX_FRAME = 64 * 1024 * 1024

#: ``code`` values a runtime may put in a result's error, and what the agent answers
#: for them; without a code the error is the function's own (``function_error``)
OUTPUT_TOO_LARGE = "output_too_large"  # the response could not be framed (MAX_FRAME)
OUT_OF_MEMORY = "out_of_memory"  # the function ran out of memory (Python: MemoryError)
TIMED_OUT = "timeout"  # the runtime stopped the function at its deadline
RESULT_ERROR_CODES = (OUTPUT_TOO_LARGE, OUT_OF_MEMORY, TIMED_OUT)


def major(version: object) -> int | None:
    """The major number of a ``MAJOR.MINOR`` version, None for anything else."""
    if not isinstance(version, str):
        return None
    head, _, _minor = version.partition(".")
    return int(head) if head.isdigit() else None


def version_problem(spoken: object) -> str | None:
    """Why a runtime that says it speaks ``spoken`` cannot serve this agent, or None."""
    if major(spoken) == major(PROTOCOL_VERSION):
        return None
    said = f"worker protocol {spoken}" if isinstance(spoken, str) else "no worker protocol version"
    return (f"it speaks {said}, and this agent speaks {PROTOCOL_VERSION} "
            f"(major {major(PROTOCOL_VERSION)}); see docs/protocol.md")


# -- shared parts ------------------------------------------------------------------------


class FunctionIdentity(TypedDict):
    tenant: str
    name: str
    version: int
    sha256: str
    runtime: str


class _ErrorInfoBase(TypedDict):
    type: str
    message: str
    traceback: str


class ErrorInfo(_ErrorInfoBase, total=False):
    """What failed: an exception of the function (type, message, the user's traceback),
    or, with ``code``, a failure the runtime recognised (one of RESULT_ERROR_CODES)."""

    code: str


class RequestInfo(TypedDict):
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body_b64: str
    client_ip: str


class ResponseInfo(TypedDict):
    status: int
    headers: dict[str, str]
    body_b64: str


class TaskRef(TypedDict):
    id: str
    attempt: int


# -- agent to worker -----------------------------------------------------------------


class InitFrame(TypedDict):
    """The first frame: the function to load (``entry`` is relative to ``code_dir``)."""

    type: Literal["init"]
    protocol: str
    function: FunctionIdentity
    code_dir: str
    entry: str
    handler: str
    env: dict[str, str]
    timeout: float


class _InvokeFrameBase(TypedDict):
    type: Literal["invoke"]
    id: str
    request: RequestInfo
    deadline: float  # a Unix timestamp


class InvokeFrame(_InvokeFrameBase, total=False):
    """Run the function once; answered by one ``result`` with the same ``id``."""

    task: TaskRef  # only when the invocation runs a background task


class _HostCallResultBase(TypedDict):
    type: Literal["hostcall_result"]
    call: int
    ok: bool


class HostCallResultFrame(_HostCallResultBase, total=False):
    """The answer to a ``hostcall``: its ``value``, or an ``error`` with ``code`` and
    ``message`` (and further scalar fields)."""

    value: Any
    error: dict[str, Any]


class ShutdownFrame(TypedDict):
    """Finish the invocations in flight, then exit."""

    type: Literal["shutdown"]


AgentFrame = InitFrame | InvokeFrame | HostCallResultFrame | ShutdownFrame


# -- worker to agent -----------------------------------------------------------------


class ReadyFrame(TypedDict):
    """The function is loaded; the worker serves invocations."""

    type: Literal["ready"]
    protocol: str
    pid: int
    runtime_version: str


class _InitErrorBase(TypedDict):
    type: Literal["init_error"]
    error: ErrorInfo


class InitErrorFrame(_InitErrorBase, total=False):
    """The function failed to load; the worker exits."""

    protocol: str


class _ResultBase(TypedDict):
    type: Literal["result"]
    id: str
    ok: bool


class ResultFrame(_ResultBase, total=False):
    """The answer to one ``invoke``: a ``response`` when ``ok``, else an ``error``."""

    response: ResponseInfo
    error: ErrorInfo


class _LogBase(TypedDict):
    type: Literal["log"]
    id: str | None  # the request being served; None outside any request
    stream: str  # stdout, stderr or logger
    message: str


class LogFrame(_LogBase, total=False):
    level: str  # logger lines only: DEBUG, INFO, WARNING, ERROR or CRITICAL


class HostCallFrame(TypedDict):
    """A call on the host (``op``: kv.get, db.execute, …) for request ``id``; ``call``
    is unique per worker and names the answer."""

    type: Literal["hostcall"]
    id: str | None
    call: int
    op: str
    args: dict[str, Any]


WorkerFrame = ReadyFrame | InitErrorFrame | ResultFrame | LogFrame | HostCallFrame
