"""Downloads into one cached file: the byte ranges a read needs, and read-ahead.

Missing ranges are fetched in pieces of at most `MAX_FETCH` bytes, several at
once (pipelined), each written into the data file by the `DownloadTarget` when
it lands. A read-ahead window, once set, is kept filled between the reader's
requests, with at most `buffer-size` bytes in flight (in memory) at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Protocol

from application.ports import RemoteReader
from domain.volume import UNLIMITED, VfsOptions

MAX_FETCH = 4 * 1024 * 1024  # one remote read; also bounds memory per request
MIN_FETCH = 256 * 1024  # a random read still asks for this much: round trips cost more


class DownloadTarget(Protocol):
    """What the downloads need of the file they fill."""

    @property
    def size(self) -> int: ...

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of [start, end) not present yet."""
        ...

    def accept_download(self, start: int, end: int, data: bytes) -> None:
        """Keep the bytes of `data` (read at `start` for [start, end)) that are
        still missing; raise OSError if the remote returned too few."""
        ...


class _Fetch:
    __slots__ = ("end", "start", "task")

    def __init__(self, start: int, end: int, task: asyncio.Task[None]) -> None:
        self.start, self.end, self.task = start, end, task


class Downloads:
    def __init__(
        self,
        target: DownloadTarget,
        open_reader: Callable[[], Awaitable[RemoteReader]],
        options: VfsOptions,
    ) -> None:
        self._target = target
        self._open_reader = open_reader
        self._options = options
        self._reader: RemoteReader | None = None
        self._fetches: list[_Fetch] = []
        self._ahead: tuple[int, int] | None = None  # the read-ahead window to keep filled

    def inflight_bytes(self) -> int:
        return sum(f.end - f.start for f in self._fetches)

    def tasks(self) -> list[asyncio.Task[None]]:
        return [f.task for f in self._fetches]

    def read_ahead(self, start: int, end: int) -> None:
        """Keep [start, end) filled from now on (until the next call)."""
        self._ahead = (start, end)
        self._prefetch(start, end)

    def stop_reading_ahead(self) -> None:
        self._ahead = None  # a random read: no window to keep filled

    async def fill(self, start: int, end: int, minimum: int = 0) -> None:
        """Make [start, end) present, fetching what is missing; each fetch asks
        for at least `minimum` bytes."""
        while True:
            size = self._target.size
            end = min(end, size)
            gaps = self._target.missing(start, end) if start < end else []
            if not gaps:
                return
            waits: list[asyncio.Task[None]] = []
            for gap_start, gap_end in gaps:
                if minimum:
                    gap_end = max(gap_end, min(gap_start + minimum, size))
                self._start_fetches(gap_start, gap_end, limit=None)
                waits.extend(
                    f.task for f in self._fetches if f.start < gap_end and f.end > gap_start
                )
            # The loop re-checks after each round: a truncate may have changed what
            # is needed, and a fetch cancelled by another handle's close is redone.
            for result in await asyncio.gather(*waits, return_exceptions=True):
                if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError
                ):
                    raise result

    async def stop(self) -> None:
        """Cancel every fetch in flight and wait for them to end."""
        self._ahead = None
        tasks = self.tasks()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(Exception):
                await reader.close()

    def _prefetch(self, start: int, end: int) -> None:
        # Memory bound: what is in flight (not yet on disk) stays under buffer-size.
        buffer = self._options.buffer_size
        limit = MAX_FETCH if buffer == UNLIMITED or buffer <= 0 else max(buffer, MAX_FETCH)
        if self.inflight_bytes() >= limit:
            return
        for gap_start, gap_end in self._target.missing(start, end):
            self._start_fetches(gap_start, gap_end, limit=limit)
            if self.inflight_bytes() >= limit:
                return

    def _piece(self) -> int:
        chunk = self._options.read_chunk_size
        return min(MAX_FETCH, chunk) if chunk > 0 else MAX_FETCH

    def _start_fetches(self, start: int, end: int, limit: int | None) -> None:
        """Start fetches for the parts of [start, end) not already in flight."""
        pos = start
        piece = self._piece()
        for fetch in sorted(self._fetches, key=lambda f: f.start):
            if fetch.end <= pos or fetch.start >= end:
                continue
            if fetch.start > pos:
                if not self._spawn(pos, fetch.start, piece, limit):
                    return
            pos = max(pos, fetch.end)
        if pos < end:
            self._spawn(pos, end, piece, limit)

    def _spawn(self, start: int, end: int, piece: int, limit: int | None) -> bool:
        loop = asyncio.get_running_loop()
        while start < end:
            if limit is not None and self.inflight_bytes() >= limit:
                return False
            stop = min(end, start + piece)
            fetch = _Fetch(start, stop, loop.create_task(self._fetch(start, stop)))
            self._fetches.append(fetch)
            fetch.task.add_done_callback(functools.partial(self._fetch_done, fetch))
            start = stop
        return True

    async def _fetch(self, start: int, end: int) -> None:
        reader = await self._shared_reader()
        data = await reader.read(start, end - start)
        self._target.accept_download(start, end, data)
        if self._ahead is not None:
            # Keep the pipeline full between the reader's requests.
            self._discard(start, end)
            self._prefetch(*self._ahead)

    async def _shared_reader(self) -> RemoteReader:
        if self._reader is None:
            reader = await self._open_reader()
            if self._reader is None:
                self._reader = reader
            else:
                await reader.close()  # another fetch opened one meanwhile
        return self._reader

    def _discard(self, start: int, end: int) -> None:
        for fetch in self._fetches:
            if fetch.start == start and fetch.end == end:
                self._fetches.remove(fetch)
                return

    def _fetch_done(self, fetch: _Fetch, _task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._fetches.remove(fetch)
        # A prefetch nobody waited for: its error is seen again by the read that
        # needs the range; mark it retrieved so asyncio does not report it.
        if not fetch.task.cancelled():
            fetch.task.exception()
