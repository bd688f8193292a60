"""Request and task ids: random, never repeated, also not by a forked child."""

from __future__ import annotations

import os

from hyac_agent.ids import random_hex
from hyac_agent.services.invoke import new_request_id
from hyac_agent.tasks.service import new_task_id


def test_ids_are_random_hex_and_never_repeat() -> None:
    ids = [random_hex(8) for _ in range(5000)]  # more than a page of randomness
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    assert new_request_id().startswith("req_") and len(new_task_id()) == len("task_") + 20


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    random_hex(8)  # the parent holds a page
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, random_hex(8).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 64).decode()
    os.close(read)
    assert len(theirs) == 16 and theirs != random_hex(8)
