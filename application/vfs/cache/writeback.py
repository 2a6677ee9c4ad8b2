"""The write-back queue: each key's upload runs after a delay, at most
`transfers` at once, retried after `domain.cache_policy.upload_retry_delay`
until it succeeds or is cancelled.

A pending upload (still in its delay, or waiting for a transfer slot) can be
cancelled or postponed; a running one is left to finish unless the caller
cancels it outright (its content changed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from loguru import logger

from application.vfs.cache.stats import UploadCounters
from domain.cache_policy import upload_retry_delay

K = TypeVar("K", bound=Hashable)

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class QueueEntry:
    """What the queue knows of one scheduled upload, for `rc vfs/queue` (read only:
    the task is what runs the upload)."""

    id: int
    scheduled_at: float  # monotonic
    due_at: float  # monotonic: when its delay ends
    state: str = "waiting"  # waiting, queued, uploading, retrying
    attempts: int = 0
    started_at: float | None = None  # monotonic: this attempt began sending


class WriteBack(Generic[K]):
    def __init__(
        self,
        upload: Callable[[K], Awaitable[None]],
        *,
        transfers: int,
        name: Callable[[K], str] = str,
        retry_base: float = 1.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._upload = upload
        self._name = name
        self._retry_base = retry_base  # first retry delay; tests shorten it
        self._sleep = sleep
        self._slots = asyncio.Semaphore(max(1, transfers))
        self._tasks: dict[K, asyncio.Task[None]] = {}
        self._transferring: dict[K, asyncio.Task[None] | None] = {}
        self._entries: dict[K, QueueEntry] = {}
        self._next_id = 1
        self.counters = UploadCounters()
        self._wall_clock = time.time

    def pending(self, key: K) -> bool:
        """An upload is scheduled or running."""
        return key in self._tasks

    def transferring(self, key: K) -> bool:
        """The upload is past its delay, moving bytes."""
        return key in self._transferring

    def task(self, key: K) -> asyncio.Task[None] | None:
        return self._tasks.get(key)

    def tasks(self) -> list[asyncio.Task[None]]:
        return list(self._tasks.values())

    def entries(self) -> list[tuple[K, QueueEntry]]:
        """The scheduled uploads and what they are doing (a snapshot)."""
        return [(key, self._entries[key]) for key in self._tasks if key in self._entries]

    def key_of(self, entry_id: int) -> K | None:
        return next((k for k, e in self._entries.items() if e.id == entry_id), None)

    def schedule(self, key: K, delay: float) -> None:
        """Upload `key` after `delay` seconds, replacing a pending upload; one
        already transferring is left alone (it is sending the current data)."""
        task = self._tasks.get(key)
        if task is not None:
            if key in self._transferring:
                return
            task.cancel()
        task = asyncio.get_running_loop().create_task(self._run(key, delay))
        self._tasks[key] = task
        now = time.monotonic()
        self._entries[key] = QueueEntry(self._next_id, now, now + max(delay, 0.0))
        self._next_id += 1
        task.add_done_callback(lambda done: self._forget(key, done))

    def postpone(self, key: K) -> None:
        """Cancel a pending upload that is not transferring yet (the file is
        used again: it is scheduled anew at the last close)."""
        if key not in self._transferring:
            self._cancel(key)

    def cancel(self, key: K) -> None:
        """Cancel the upload, running or not (its content changed)."""
        self._cancel(key)

    async def stop(self, key: K) -> None:
        """Cancel the upload and wait for it to end."""
        task = self._tasks.pop(key, None)
        self._entries.pop(key, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _cancel(self, key: K) -> None:
        task = self._tasks.pop(key, None)
        self._entries.pop(key, None)
        if task is not None:
            task.cancel()

    def _forget(self, key: K, done: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is done:
            del self._tasks[key]
            self._entries.pop(key, None)

    def _set_state(self, key: K, state: str) -> QueueEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.state = state
        return entry

    async def _run(self, key: K, delay: float) -> None:
        if delay > 0:
            await self._sleep(delay)
        attempt = 0
        while True:
            self._set_state(key, "queued")
            try:
                async with self._slots:
                    me = asyncio.current_task()
                    self._transferring[key] = me
                    entry = self._set_state(key, "uploading")
                    if entry is not None:
                        entry.attempts += 1
                        entry.started_at = time.monotonic()
                    if attempt:
                        self.counters.retried += 1
                    try:
                        await self._upload(key)
                    finally:
                        # A cancelled upload may end after its successor started.
                        if self._transferring.get(key) is me:
                            del self._transferring[key]
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                self.counters.record_failure(self._name(key), exc, self._wall_clock())
                self._set_state(key, "retrying")
                wait = upload_retry_delay(attempt, base=self._retry_base)
                logger.error(
                    "{}: upload failed (attempt {}), retrying in {:g} s: {}",
                    self._name(key),
                    attempt,
                    wait,
                    exc,
                )
                await self._sleep(wait)
