"""The VFS cache's disk layer: sparse data files and their metadata records."""

from adapters.cache.disk import DiskCacheStore, cache_root, has_dirty_items

__all__ = ["DiskCacheStore", "cache_root", "has_dirty_items"]
