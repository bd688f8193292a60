from __future__ import annotations

import pytest

from hyac_common.durations import parse_duration, parse_size
from hyac_common.errors import InvalidInput, NotFound
from hyac_common.names import validate_name


@pytest.mark.parametrize("name", ["hello", "a", "my-func_2", "x" * 63, "0day"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 64, "a/b", "a\\b", "..", "a..b", "Hello", "caf\u00e9", "-a", "a-", "a b", "a.b"]
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_name(name)


def test_v1_is_reserved_for_tenants_only() -> None:
    with pytest.raises(InvalidInput, match="reserved"):
        validate_name("v1", "tenant")
    assert validate_name("v1") == "v1"  # a function may be called v1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30.0), ("30", 30.0), ("10m", 600.0), ("1h30m", 5400.0), ("500ms", 0.5), (1.5, 1.5)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "-5", 0, True, "5x", "m10"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(InvalidInput):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"), [("256Mi", 256 * 1024**2), ("1G", 10**9), (1024, 1024), ("1Gi", 1024**3), ("512k", 512_000)]
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1", 0, "5Q"])
def test_bad_sizes(text: object) -> None:
    with pytest.raises(InvalidInput):
        parse_size(text)


def test_errors_serialise() -> None:
    error = NotFound("function 'x' not found", request_id="req_1")
    assert error.status == 404
    assert error.to_json() == {
        "error": {"code": "not_found", "message": "function 'x' not found", "request_id": "req_1"}
    }
