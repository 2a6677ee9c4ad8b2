"""Size and time changes of a node (setattr's truncate and utimens): through
a live writer, the cache item every cached handle shares, or the remote itself,
whichever holds the file as the user sees it."""

from __future__ import annotations

import errno
import time

from loguru import logger

from application.ports import RemoteStorage
from application.vfs.cache.null import FileCache
from application.vfs.handles import Handle
from application.vfs.metadata import MetadataKeeper
from application.vfs.nodes import Node
from application.vfs.opening import FileOpener
from domain.metadata import FileMetadata
from domain.volume import CacheMode, VfsOptions


class AttributeChanges:
    def __init__(
        self,
        storage: RemoteStorage,
        options: VfsOptions,
        cache: FileCache,
        opener: FileOpener,
        metadata: MetadataKeeper,
    ) -> None:
        self._storage = storage
        self._options = options
        self._cache = cache
        self._opener = opener
        self._metadata = metadata

    def remote_current(self, node: Node) -> bool:
        """The remote holds the node as the user sees it: no upload pending."""
        if node.is_dir or node.is_link:
            return True
        return (
            node.on_remote
            and not node.pending_writers()
            and not self._cache.holds_local_changes(node.path)
        )

    async def truncate(self, node: Node, size: int, handle: Handle | None) -> None:
        if node.is_dir:
            raise OSError(errno.EISDIR, f"{node.path!r} is a directory")
        if handle is not None and handle.node is node and await handle.ftruncate(size):
            return
        live = node.pending_writers()
        if live:
            for writer in live:
                await writer.truncate(size)
            return
        mode = self._options.cache_mode
        if mode is not CacheMode.OFF:
            # Mode minimal caches only what needs it: an existing item, or a size
            # the streaming path cannot give.
            if self._cache.has(node.path) or mode is not CacheMode.MINIMAL or size != 0:
                await self._truncate_cached(node, size)
                return
        if node.size == size:
            return
        if size != 0:
            logger.error(
                "{}: can't truncate to {} bytes with --vfs-cache-mode off (only to 0)",
                node.path,
                size,
            )
            raise OSError(errno.EPERM, "truncate to a non-zero size needs a cache mode")
        upload = await self._storage.open_writer(node.path)
        try:
            await upload.commit()
        except BaseException:
            await upload.abort()
            raise
        node.size = 0
        node.mtime = time.time()
        node.on_remote = True

    async def _truncate_cached(self, node: Node, size: int) -> None:
        # Through the cache item, which every cached handle of the file shares;
        # the change is uploaded like any other once the item is closed.
        cache = self._cache
        item = await self._opener.acquire(node, keep_data=size > 0)
        try:
            await cache.truncate(item, size)
        finally:
            await cache.release(item)

    async def set_mtime(self, node: Node, mtime: float) -> None:
        if node.is_link:
            await self._storage.set_mtime(node.remote_path, mtime)
            node.mtime = mtime
            return
        if not node.is_dir and self._cache.has(node.path):
            if await self._cache.set_mtime(node.path, mtime):
                node.mtime = mtime  # the upload carries it to the remote
                return
        pending = node.pending_writers()
        if pending:
            for writer in pending:
                writer.pending_mtime = mtime  # applied once the upload is committed
        elif not node.is_dir and node.on_remote:
            await self._storage.set_mtime(node.path, mtime)
        elif node.is_dir and self._metadata.enabled:
            # --metadata keeps a directory's time where the remote can (rsync -a
            # compares them); without it, in memory only, as in rclone.
            await self._metadata.change(node, FileMetadata(mtime=mtime), remote_current=True)
            self._metadata.pin_directory_time(node)
        node.mtime = mtime
