"""Counts mount workers starting, exiting and crashing, for the daemon's metrics,
by watching the workers' locks under `<cache-dir>/workers` (a worker holds its
volume's lock for as long as it runs). A worker that exits cleanly has unmounted
first; one that this daemon saw die unexpectedly, or that left its FUSE mount
behind (dead, ENOTCONN; an adopted worker), crashed."""

from __future__ import annotations

import anyio

from adapters.mounting.live_workers import volumes_with_live_workers
from adapters.mounting.protocol import worker_paths
from adapters.mounting.registry import CRASHED
from adapters.mounting.system import WorkerUnreachable, call_worker, is_mounted, lock_holder

POLL_INTERVAL = 1.0


class WorkerWatch:
    def __init__(self, cache_dir: str) -> None:
        self.cache_dir = cache_dir
        self.counts = {"started": 0, "exited": 0, "crashed": 0}
        self._live: dict[str, tuple[int, str | None]] = {}  # name -> (pid, mountpoint)
        self._polling = anyio.Lock()  # the loop and a scrape may poll at once

    async def poll(self) -> None:
        async with self._polling:
            await self._poll()

    async def run(self, interval: float = POLL_INTERVAL) -> None:
        while True:
            await self.poll()
            await anyio.sleep(interval)

    async def _poll(self) -> None:
        now: dict[str, int] = {}
        for name in await anyio.to_thread.run_sync(volumes_with_live_workers, self.cache_dir):
            pid = lock_holder(worker_paths(self.cache_dir, name).lock)
            if pid:
                now[name] = pid
        for name, (pid, mountpoint) in list(self._live.items()):
            if now.get(name) != pid:
                del self._live[name]
                self.counts["exited"] += 1
                if pid in CRASHED or (mountpoint is not None and is_mounted(mountpoint)):
                    self.counts["crashed"] += 1
        for name, pid in now.items():
            if name not in self._live:
                self.counts["started"] += 1
                self._live[name] = (pid, await self._mountpoint(name))

    async def _mountpoint(self, name: str) -> str | None:
        try:
            reply = await call_worker(worker_paths(self.cache_dir, name).socket, "status", 2.0)
        except WorkerUnreachable:
            return None
        mountpoint = reply.get("mountpoint")
        return mountpoint if isinstance(mountpoint, str) else None
