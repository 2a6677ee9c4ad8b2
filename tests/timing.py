"""Time in the storage tests without bets on the scheduler: waiting for a
condition with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until `condition()` holds; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not condition():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.02)
