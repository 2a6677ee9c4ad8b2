"""The write-back queue alone: delays, postponing, cancelling, the transfer
limit and retries, on a clock the test moves by hand."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from application.vfs.cache.writeback import WriteBack

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class ManualClock:
    """A sleep that returns only once the test advances the time past it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((self.now + delay, future))
        await future

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        for due, future in list(self._waiters):
            if due <= self.now and not future.done():
                future.set_result(None)
        await settle()


async def settle() -> None:
    for _ in range(20):  # let every task run as far as it can
        await asyncio.sleep(0)


class Uploads:
    """An upload callable whose calls wait for `gate` and may fail first."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.started: list[str] = []
        self.done: list[str] = []
        self.running = 0
        self.peak = 0
        self.failures = 0

    async def __call__(self, key: str) -> None:
        self.started.append(key)
        if self.failures > 0:
            self.failures -= 1
            raise OSError("injected")
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        self.done.append(key)


def queue(uploads: Uploads, clock: ManualClock, transfers: int = 4) -> WriteBack[str]:
    return WriteBack[str](uploads, transfers=transfers, retry_base=1.0, sleep=clock.sleep)


async def wait_until(cond: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + 5.0
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0)


async def test_an_upload_runs_after_its_delay() -> None:
    uploads, clock = Uploads(), ManualClock()
    wb = queue(uploads, clock)
    wb.schedule("f", 30.0)
    await settle()
    await clock.advance(29.0)
    assert uploads.started == [] and wb.pending("f")
    await clock.advance(1.0)
    assert uploads.done == ["f"]
    assert not wb.pending("f")


async def test_a_zero_delay_uploads_at_once() -> None:
    uploads, clock = Uploads(), ManualClock()
    wb = queue(uploads, clock)
    wb.schedule("f", 0.0)
    await wait_until(lambda: uploads.done == ["f"])
    assert clock.sleeps == []


async def test_postponing_cancels_a_waiting_upload_only() -> None:
    uploads, clock = Uploads(), ManualClock()
    wb = queue(uploads, clock)
    wb.schedule("waiting", 10.0)
    wb.postpone("waiting")
    assert not wb.pending("waiting")
    uploads.gate.clear()
    wb.schedule("running", 0.0)
    await wait_until(lambda: wb.transferring("running"))
    wb.postpone("running")  # it is sending the current data: left alone
    uploads.gate.set()
    await wait_until(lambda: uploads.done == ["running"])
    await clock.advance(10.0)
    assert uploads.started == ["running"]


async def test_scheduling_again_replaces_a_waiting_upload_not_a_running_one() -> None:
    uploads, clock = Uploads(), ManualClock()
    wb = queue(uploads, clock)
    wb.schedule("f", 10.0)
    wb.schedule("f", 20.0)
    await settle()
    await clock.advance(10.0)
    assert uploads.started == []
    await clock.advance(10.0)
    assert uploads.done == ["f"]
    uploads.gate.clear()
    wb.schedule("g", 0.0)
    await wait_until(lambda: wb.transferring("g"))
    wb.schedule("g", 0.0)
    uploads.gate.set()
    await wait_until(lambda: not wb.pending("g"))
    assert uploads.started == ["f", "g"]


async def running_upload(key: str) -> tuple[Uploads, WriteBack[str]]:
    """A queue whose upload of `key` runs, held at its gate."""
    uploads = Uploads()
    wb = queue(uploads, ManualClock())
    uploads.gate.clear()
    wb.schedule(key, 0.0)
    await wait_until(lambda: uploads.running == 1)
    return uploads, wb


async def test_cancel_stops_a_running_upload() -> None:
    uploads, wb = await running_upload("f")
    wb.cancel("f")
    await wait_until(lambda: uploads.running == 0)
    assert not wb.pending("f") and not wb.transferring("f")
    uploads.gate.set()
    wb.schedule("f", 0.0)  # allowed again: it does upload
    await wait_until(lambda: uploads.done == ["f"])


async def test_stop_waits_for_the_cancelled_upload() -> None:
    uploads, wb = await running_upload("f")
    await wb.stop("f")
    assert uploads.running == 0 and not wb.pending("f")


async def test_at_most_transfers_uploads_run_at_once() -> None:
    uploads, clock = Uploads(), ManualClock()
    wb = queue(uploads, clock, transfers=2)
    uploads.gate.clear()
    for key in "abcde":
        wb.schedule(key, 0.0)
    await wait_until(lambda: uploads.running == 2)
    await settle()
    assert len(uploads.started) == 2  # the others wait for a slot
    uploads.gate.set()
    await wait_until(lambda: sorted(uploads.done) == list("abcde"))
    assert uploads.peak == 2


async def test_failures_are_retried_with_growing_delays() -> None:
    uploads, clock = Uploads(), ManualClock()
    wb = queue(uploads, clock)
    uploads.failures = 3
    wb.schedule("f", 0.0)
    await settle()
    for delay in (1.0, 2.0, 4.0):
        assert uploads.done == []
        await clock.advance(delay)
    assert uploads.done == ["f"]
    assert clock.sleeps == [1.0, 2.0, 4.0]
