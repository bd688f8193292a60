from __future__ import annotations

from hyac_agent.logframes import (
    LINE_OVERHEAD,
    MAX_LINE,
    MAX_LOG_BYTES_PER_REQUEST,
    MAX_RAW_OUTPUT_BYTES,
    LogBudget,
)


def budget() -> tuple[LogBudget, list[str]]:
    notices: list[str] = []
    return LogBudget(notices.append), notices


def test_a_frame_is_believed_only_for_a_request_in_flight() -> None:
    logs, notices = budget()
    assert logs.frame({"id": "req_other", "message": "x"}, {"req_own"}) is None
    assert logs.frame({"id": 7, "message": "x"}, {"req_own"}) is None
    assert logs.foreign_frames == 2 and len(notices) == 1
    line = logs.frame({"id": "req_own", "message": "hello", "stream": "logger", "level": "info"},
                      {"req_own"})
    assert line is not None
    assert (line.request_id, line.stream, line.level, line.message) == (
        "req_own", "logger", "INFO", "hello")


def test_fields_are_cut_to_what_the_log_holds() -> None:
    logs, _ = budget()
    line = logs.frame({"id": None, "message": "m" * (MAX_LINE * 4), "stream": "s" * 999,
                       "level": "L" * 999}, ())
    assert line is not None
    assert line.stream == "stdout" and line.level is None
    assert len(line.message) < MAX_LINE + 20


def test_every_line_costs_its_overhead_and_the_budget_ends() -> None:
    logs, notices = budget()
    kept = sum(logs.frame({"id": "r", "message": ""}, {"r"}) is not None
               for _ in range(MAX_LOG_BYTES_PER_REQUEST // LINE_OVERHEAD + 100))
    assert kept == MAX_LOG_BYTES_PER_REQUEST // LINE_OVERHEAD
    assert any("output_too_large" in n for n in notices)
    raw_kept = sum(logs.raw(b"\n", "stdout") is not None
                   for _ in range(MAX_RAW_OUTPUT_BYTES // LINE_OVERHEAD + 100))
    assert raw_kept < MAX_RAW_OUTPUT_BYTES // LINE_OVERHEAD
