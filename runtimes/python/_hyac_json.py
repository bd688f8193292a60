"""JSON for the worker, without the start-up cost of the ``json`` package.

``import json`` compiles the package's regular expressions, and with them imports ``re``
and ``enum``: about 5 ms of every sandbox's start. The parsing and the serialising are
done by ``_json``, the C accelerator that ``json`` itself uses, so this module drives
it directly, with the settings ``json.loads`` and ``json.dumps`` give it. Every input
``_json`` does not take as it is (byte order marks, other encodings, errors), and any
interpreter without ``_json``, goes to the ``json`` package, so results and error
messages are those of ``json`` in every case.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"


def _json() -> Any:
    import json

    return json


def _not_serialisable(value: object) -> Any:
    """``json.JSONEncoder.default``: what it raises, word for word."""
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


class _DecoderSettings:
    """What the C scanner reads from a ``json.JSONDecoder``: ``json.loads``'s defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan"),
    }.__getitem__
    memo: dict[str, str] = {}


try:
    from _json import encode_basestring, encode_basestring_ascii, make_encoder, make_scanner

    _scan = make_scanner(_DecoderSettings())
    # The C encoder as json.JSONEncoder builds it, once to prove this interpreter's takes
    # these arguments (a later interpreter may not: then the json package serves).
    make_encoder({}, _not_serialisable, encode_basestring, None, ":", ",", False, False, False)
except (ImportError, TypeError, AttributeError):  # pragma: no cover - every CPython has it
    _scan = None


def loads(text: str | bytes | bytearray) -> Any:
    """``json.loads(text)``."""
    if _scan is None:
        return _json().loads(text)
    if not isinstance(text, str):
        # json.loads reads UTF-16 and UTF-32 too, told by a byte order mark or zero bytes.
        if (not isinstance(text, (bytes, bytearray)) or b"\x00" in text[:4]
                or text[:3] == b"\xef\xbb\xbf" or text[:2] in (b"\xff\xfe", b"\xfe\xff")):
            return _json().loads(text)
        try:
            text = text.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return _json().loads(text)  # raises json's own error
    if text.startswith("\ufeff"):
        return _json().loads(text)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except (StopIteration, ValueError, SystemError):
        # json's own error, with its line and column. (The scanner of 3.10 and 3.11 takes
        # its error class from json.decoder only when that is imported already, and
        # fails with a SystemError when it is not.)
        return _json().loads(text)
    if end != len(text) and text[end:].strip(_WHITESPACE):
        return _json().loads(text)  # "Extra data"
    return value


def dumps(value: Any, *, ensure_ascii: bool = True, allow_nan: bool = True,
          separators: tuple[str, str] | None = None) -> str:
    """``json.dumps(value, ensure_ascii=..., allow_nan=..., separators=...)``."""
    if _scan is None:
        return str(_json().dumps(value, ensure_ascii=ensure_ascii, allow_nan=allow_nan,
                                 separators=separators))
    item_separator, key_separator = separators or (", ", ": ")
    # A new encoder per call, as json.dumps makes one: its record of the containers
    # being encoded (which finds circular references) belongs to one call.
    encode = make_encoder(
        {}, _not_serialisable, encode_basestring_ascii if ensure_ascii else encode_basestring,
        None, key_separator, item_separator, False, False, allow_nan,
    )
    chunks = encode(value, 0)
    return chunks if isinstance(chunks, str) else "".join(chunks)
