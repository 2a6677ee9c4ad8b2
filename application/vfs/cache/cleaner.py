"""Eviction: every `cache_poll_interval`, `domain.cache_policy.choose_evictions`
picks the clean, closed items to remove (by age, then least recently used above
the size limit, then least recently used until --vfs-cache-min-free-space is
free on the cache's disk), counting the bytes really present in the sparse files."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from loguru import logger

from application.ports import CacheStore
from application.vfs.cache.item import CacheItem
from application.vfs.cache.registry import ItemRegistry
from domain.cache_policy import CacheItemUsage, choose_evictions
from domain.volume import VfsOptions


class Cleaner:
    def __init__(
        self,
        registry: ItemRegistry,
        store: CacheStore,
        options: VfsOptions,
        *,
        upload_pending: Callable[[CacheItem], bool],
        evict: Callable[[CacheItem], Awaitable[None]],
        wall_clock: Callable[[], float],
    ) -> None:
        self._registry = registry
        self._store = store
        self._options = options
        self._upload_pending = upload_pending
        self._evict = evict
        self._now = wall_clock
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._options.cache_poll_interval > 0:
            self._loop = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._loop = self._loop, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._options.cache_poll_interval)
            try:
                await self.clean()
            except Exception:
                logger.exception("cache cleaning failed")

    def _free_shortfall(self) -> int:
        """Bytes to free for --vfs-cache-min-free-space (0 when off or met)."""
        wanted = self._options.cache_min_free_space
        if wanted <= 0:
            return 0
        try:
            free = self._store.free_bytes()
        except OSError as exc:
            logger.warning("vfs-cache-min-free-space: can't read the cache's free space: {}", exc)
            return 0
        return max(0, wanted - free)

    async def clean(self) -> list[str]:
        """Evict what `choose_evictions` picks; returns the paths chosen."""
        usages = [
            CacheItemUsage(
                path=item.path,
                present_bytes=self._store.present_bytes(item.path),
                last_access=item.record.atime,
                open=item.users > 0,
                dirty=item.dirty or self._upload_pending(item),
            )
            for item in self._registry
        ]
        chosen = choose_evictions(
            usages,
            self._now(),
            self._options.cache_max_age,
            self._options.cache_max_size,
            free_shortfall=self._free_shortfall(),
        )
        for path in chosen:
            item = self._registry.get(path)
            if item is None or item.users > 0 or item.dirty:
                continue
            logger.debug("{}: evicted from the cache", path)
            await self._evict(item)
        return chosen
