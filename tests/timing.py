"""Time in the storage tests without bets on the scheduler: timers that fire when
the test says, and waiting for a condition with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class ManualTimer:
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class ManualTimers:
    """Stands in for the event loop's call_later: `expire()` runs what is due."""

    pending: list[ManualTimer] = field(default_factory=list)

    def __call__(self, delay: float, callback: Callable[[], None]) -> ManualTimer:
        self.pending.append(ManualTimer(callback))
        return self.pending[-1]

    def expire(self) -> None:
        """Run every timer not cancelled, as if its delay had passed."""
        due, self.pending = self.pending, []
        for timer in due:
            if not timer.cancelled:
                timer.callback()


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until `condition()` holds; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not condition():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.02)


def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """`eventually` for tests without an event loop (real mounts, processes)."""
    end = time.monotonic() + within
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.02)
