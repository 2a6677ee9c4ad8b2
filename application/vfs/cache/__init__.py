"""The VFS file cache, in parts: each cached file is an `item` (data file plus
record), kept in a `registry`; `downloads` fill what reads need, `writeback`
queues the uploads `upload` performs, `streams` send sequential writes while
they happen, and the `cleaner` evicts. `VfsCache` puts them together."""

from application.vfs.cache.downloads import MAX_FETCH
from application.vfs.cache.item import CacheItem
from application.vfs.cache.vfs_cache import VfsCache

__all__ = ["MAX_FETCH", "CacheItem", "VfsCache"]
