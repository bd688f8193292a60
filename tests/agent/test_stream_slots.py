"""StreamSlots: each user's share of open streams, given back however a stream ends."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import pytest

from hyac_agent.api.streams import StreamSlots
from hyac_agent.tenancy import Principal
from hyac_common.errors import TooManyStreams

ANN = Principal("ann", kind="user", id="usr_ann")
BOB = Principal("bob", kind="user", id="usr_bob")
OWNER = Principal("owner", owner=True)


async def events() -> AsyncIterator[str]:
    yield ": connected\n\n"
    yield ": ping\n\n"


def test_a_users_share_and_the_owner() -> None:
    slots = StreamSlots(2)
    first, _second = slots.take(ANN), slots.take(ANN)
    with pytest.raises(TooManyStreams, match="ann has 2"):
        slots.take(ANN)
    slots.take(BOB)  # another user's share is their own
    for _ in range(10):
        slots.take(OWNER)
    first()
    first()  # given back once only
    slots.take(ANN)
    with pytest.raises(TooManyStreams):
        slots.take(ANN)


def test_a_slot_comes_back_however_the_stream_ends() -> None:
    slots = StreamSlots(1)

    async def run() -> None:
        # read to the end
        async for _ in StreamSlots.holding(slots.take(ANN), events()):
            pass
        # closed after its first event (the client went)
        stream = StreamSlots.holding(slots.take(ANN), events())
        await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]

    asyncio.run(run())
    # never started: the client went before the first event, so no finally ran
    stream = StreamSlots.holding(slots.take(ANN), events())
    del stream
    gc.collect()
    slots.take(ANN)
