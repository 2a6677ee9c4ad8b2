"""What the VFS needs of a file cache, and the cache of a VFS without one (cache
mode off with no cache directory): it holds nothing, so every file is the
remote's and nothing is ever uploaded from it."""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import Protocol

from application.vfs.cache.item import CacheItem
from application.vfs.cache.stats import EMPTY_STATS, CacheStats
from domain.fingerprint import Fingerprint


class FileCache(Protocol):
    async def start(self) -> None: ...

    async def drain(self) -> None: ...

    async def stop(self) -> None: ...

    async def clean(self) -> list[str]: ...

    def item(self, path: str) -> CacheItem | None: ...

    def has(self, path: str) -> bool: ...

    def items(self) -> Iterable[CacheItem]: ...

    def holds_local_changes(self, path: str) -> bool: ...

    def dirty_children(self, directory: str) -> list[CacheItem]: ...

    def pending_uploads(self) -> int: ...

    def stats(self) -> CacheStats: ...

    def expire_upload(self, upload_id: int, expiry: float) -> bool: ...

    async def acquire(
        self, path: str, remote: Fingerprint | None, remote_mtime: float
    ) -> CacheItem: ...

    async def release(self, item: CacheItem) -> None: ...

    async def write(self, item: CacheItem, offset: int, data: bytes) -> int: ...

    async def truncate(self, item: CacheItem, size: int) -> None: ...

    async def set_mtime(self, path: str, mtime: float) -> bool: ...

    async def remove(self, path: str) -> None: ...

    async def pause_uploads(self, path: str) -> None: ...

    def resume_uploads(self, path: str) -> None: ...

    async def rename(self, src: str, dst: str) -> None: ...

    async def upload_now(self, path: str) -> None: ...


class NullCache:
    """No cache: empty, and no item can be opened (the open plans of cache mode
    off never ask for one)."""

    async def start(self) -> None:
        pass

    async def drain(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def clean(self) -> list[str]:
        return []

    def item(self, path: str) -> CacheItem | None:
        return None

    def has(self, path: str) -> bool:
        return False

    def items(self) -> Iterable[CacheItem]:
        return ()

    def holds_local_changes(self, path: str) -> bool:
        return False

    def dirty_children(self, directory: str) -> list[CacheItem]:
        return []

    def pending_uploads(self) -> int:
        return 0

    def stats(self) -> CacheStats:
        return EMPTY_STATS

    def expire_upload(self, upload_id: int, expiry: float) -> bool:
        return False

    async def acquire(
        self, path: str, remote: Fingerprint | None, remote_mtime: float
    ) -> CacheItem:
        raise OSError(errno.EIO, f"{path}: no cache directory to cache the file in")

    async def release(self, item: CacheItem) -> None:
        raise _never_acquired(item)

    async def write(self, item: CacheItem, offset: int, data: bytes) -> int:
        raise _never_acquired(item)

    async def truncate(self, item: CacheItem, size: int) -> None:
        raise _never_acquired(item)

    async def set_mtime(self, path: str, mtime: float) -> bool:
        return False  # not cached: the caller sets it on the remote

    async def remove(self, path: str) -> None:
        pass

    async def pause_uploads(self, path: str) -> None:
        pass

    def resume_uploads(self, path: str) -> None:
        pass

    async def rename(self, src: str, dst: str) -> None:
        pass

    async def upload_now(self, path: str) -> None:
        pass  # nothing is ever pending


def _never_acquired(item: CacheItem) -> OSError:
    return OSError(errno.EBADF, f"{item.path}: not an item of this cache")
