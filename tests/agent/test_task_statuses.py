"""Task statuses: one enum in hyac_common/tasks.py whose members are the stored words."""

from __future__ import annotations

import json
from typing import get_args

from hyac_common import tasks
from hyac_common.tasks import TaskStatus
from hyac_common.wire import TaskInfo, TaskSubmitted

WORDS = ["queued", "running", "succeeded", "failed", "dead", "cancelled"]


def test_the_statuses_are_the_words_stored_and_sent() -> None:
    assert [status.value for status in TaskStatus] == WORDS
    assert [f"{status}" for status in TaskStatus] == WORDS
    assert json.dumps(list(TaskStatus)) == json.dumps(WORDS)
    assert all(status == word and word in (status,) for status, word in zip(TaskStatus, WORDS, strict=True))


def test_the_wire_field_type_lists_every_status() -> None:
    assert list(get_args(tasks.TaskStatusName)) == list(TaskStatus)


def test_the_api_schema_is_an_inline_list_of_the_words() -> None:
    status = TaskInfo.model_json_schema()["properties"]["status"]
    assert status == {"enum": WORDS, "title": "Status", "type": "string"}
    submitted = TaskSubmitted.model_json_schema()["properties"]["status"]
    assert submitted == {"default": "queued", "enum": WORDS, "title": "Status", "type": "string"}
    answer = TaskSubmitted(task_id="task_1", location="/v1/tasks/task_1")
    assert json.loads(answer.model_dump_json())["status"] == "queued"
    assert TaskSubmitted.model_validate({"task_id": "t", "location": "l", "status": "dead"}).status \
        is TaskStatus.DEAD


def test_the_sets_partition_the_statuses() -> None:
    assert set(tasks.TERMINAL) | set(tasks.UNFINISHED) == set(TaskStatus)
    assert not set(tasks.TERMINAL) & set(tasks.UNFINISHED)
    assert set(tasks.WAITING) < set(tasks.UNFINISHED)
    assert set(tasks.RETRYABLE) < set(tasks.TERMINAL)
    assert TaskStatus.SUCCEEDED not in tasks.RETRYABLE
    assert "dead" in tasks.TERMINAL and "running" not in tasks.WAITING  # plain words too


def test_the_queues_own_error_codes_are_no_invocation_codes() -> None:
    from hyac_common.errors import BY_CODE

    assert {tasks.TASK_EXPIRED, tasks.TASK_LOST} == {"expired", "lost"}
    assert not {tasks.TASK_EXPIRED, tasks.TASK_LOST} & set(BY_CODE)
