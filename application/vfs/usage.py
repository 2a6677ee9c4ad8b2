"""`--vfs-used-is-size`: the bytes used on the remote, by walking all of it.

The cost is one `list_dir` per directory of the remote (like `rclone size`, and
ignoring filters so that the total is right), so the result is kept for
`dir-cache-time`. The walk runs in the background: statfs(2) never waits for
it, it shows the last total (0 until the first walk ends, which starts at
mount) and starts a new walk once that total is older than `dir-cache-time`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from loguru import logger

from application.ports import RemoteStorage
from domain.paths import join

# Directories listed at once: enough to hide round trips, few enough to leave
# the connection pool to the files being read.
_PARALLEL_LISTINGS = 4


async def remote_size(storage: RemoteStorage) -> tuple[int, int]:
    """(bytes, files) of every file below the root."""
    total = files = 0
    pending = [""]
    while pending:
        batch, pending = pending[:_PARALLEL_LISTINGS], pending[_PARALLEL_LISTINGS:]
        listings = await asyncio.gather(*(storage.list_dir(path) for path in batch))
        for path, entries in zip(batch, listings, strict=True):
            for entry in entries:
                if entry.is_dir:
                    pending.append(join(path, entry.name))
                else:
                    total += entry.size
                    files += 1
    return total, files


class RemoteUsage:
    def __init__(self, storage: RemoteStorage, max_age: float, clock: Callable[[], float]) -> None:
        self._storage = storage
        self._max_age = max_age
        self._clock = clock
        self._used = 0
        self._measured_at: float | None = None
        self._walk: asyncio.Task[None] | None = None

    @property
    def used(self) -> int:
        """The last total; starts a walk when it is missing or stale."""
        stale = self._measured_at is None or self._clock() - self._measured_at >= self._max_age
        if stale and (self._walk is None or self._walk.done()):
            self._walk = asyncio.get_running_loop().create_task(self._measure())
        return self._used

    async def _measure(self) -> None:
        started = self._clock()
        try:
            used, files = await remote_size(self._storage)
        except OSError as exc:
            logger.error("vfs-used-is-size: walking the remote failed: {}", exc)
            self._measured_at = started  # try again after max_age, not at every statfs
            return
        self._used, self._measured_at = used, started
        logger.debug("vfs-used-is-size: {} bytes in {} files", used, files)

    async def wait(self) -> None:
        """Wait for the walk in progress, if any (for tests and start)."""
        if self._walk is not None:
            await asyncio.gather(self._walk, return_exceptions=True)

    async def stop(self) -> None:
        task, self._walk = self._walk, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
