"""The one decision about a removed volume's file cache: it goes, unless it still
holds files to upload (those are data nobody else has)."""

from __future__ import annotations

import functools
import shutil

import anyio
from loguru import logger

from adapters.cache import cache_root, has_dirty_items


async def remove_volume_cache(cache_dir: str, name: str) -> bool:
    """Remove the cache of removed volume `name` unless it holds dirty items.
    Call it only where no worker can be using the cache (holding, or having
    checked, the volume's lock). Returns whether it was removed."""
    if await anyio.to_thread.run_sync(has_dirty_items, cache_dir, name):
        logger.warning("keeping the cache of removed volume {}: it holds files not uploaded", name)
        return False
    root = cache_root(cache_dir, name)
    await anyio.to_thread.run_sync(functools.partial(shutil.rmtree, root, ignore_errors=True))
    return True
