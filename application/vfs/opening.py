"""Opening files: each open is served as `domain.cache_policy.plan_open` decides
for the cache mode, either uncached (streaming read handles, sequential write
handles that upload as they go) or through the file cache."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable

from loguru import logger

from application.ports import RemoteStorage
from application.vfs.cache import CacheItem
from application.vfs.cache.null import FileCache
from application.vfs.handles import CachedHandle, Handle, ReadHandle, WriteHandle
from application.vfs.nodes import Node
from application.vfs.tree import DirectoryTree
from domain.cache_policy import OpenRequest, plan_open
from domain.fingerprint import Fingerprint
from domain.paths import join
from domain.remote_entry import RemoteEntry
from domain.volume import CacheMode, VfsOptions


class FileOpener:
    def __init__(
        self,
        storage: RemoteStorage,
        options: VfsOptions,
        cache: FileCache,
        tree: DirectoryTree,
        *,
        slow_modtime: bool,
        after_commit: Callable[[Node], None] | None = None,
    ) -> None:
        """`after_commit`: told of each uncached upload that reached the remote."""
        self._storage = storage
        self._options = options
        self._cache = cache
        self._tree = tree
        self._slow_modtime = slow_modtime
        self._after_commit = after_commit

    async def create(self, parent: Node, name: str, flags: int) -> tuple[Node, Handle]:
        """Create the file `name` in `parent` (not there yet) and open it."""
        path = join(parent.path, name)
        plan = plan_open(
            self._options.cache_mode,
            open_request(flags | os.O_CREAT, exists=False),
            read_only=self._options.read_only,
            in_cache=self._cache.has(path),
        )
        node = self._tree.new_node(parent, name, False, 0, time.time())
        node.on_remote = False
        self._tree.attach(parent, node)
        handle: Handle
        try:
            if plan.cached:
                item = await self.acquire(node, keep_data=False)
                cached = CachedHandle(node, self._cache, item, plan, self._options)
                await cached.truncate(0)  # a new file: dirty, so it is uploaded even empty
                handle = cached
            else:
                handle = self._write_handle(node, truncate=True)
        except BaseException:
            self._tree.detach(node)
            raise
        return node, handle

    async def open(self, node: Node, flags: int) -> Handle:
        plan = plan_open(
            self._options.cache_mode,
            open_request(flags, exists=True),
            read_only=self._options.read_only,
            in_cache=self._options.cache_mode is not CacheMode.OFF and self._cache.has(node.path),
        )
        if plan.cached:
            item = await self.acquire(node, keep_data=not plan.truncate)
            try:
                handle = CachedHandle(node, self._cache, item, plan, self._options)
                if plan.truncate:
                    await handle.truncate(0)
            except BaseException:
                await self._cache.release(item)
                raise
            return handle
        if plan.write:
            if flags & os.O_ACCMODE == os.O_RDWR:
                # rclone's rule for an uncached open: write-only, and hope no read
                # comes; one that does fails with EPERM and is logged.
                logger.info(
                    "{}: opened read-write with --vfs-cache-mode {}: reads will fail",
                    node.path,
                    self._options.cache_mode.value,
                )
            return self._write_handle(node, truncate=plan.truncate)
        if not node.on_remote:
            await self._wait_uploaded(node)
        return ReadHandle(node, self._storage, self._options)

    async def acquire(self, node: Node, *, keep_data: bool) -> CacheItem:
        """Open `node`'s cache item, its data checked against the remote file.

        The remote's fingerprint comes from a fresh stat, unless
        --vfs-fast-fingerprint says to trust the directory cache (and to leave out
        modification times where the backend makes them slow). Data about to be
        truncated away needs no check at all."""
        cache = self._cache
        item = cache.item(node.path)
        remote: Fingerprint | None = None
        if item is not None and (item.dirty or item.opens > 0 or not keep_data):
            # In use, holding local changes, or about to be emptied: nothing to check.
            remote = item.record.fingerprint
        elif node.on_remote:
            fast = self._options.fast_fingerprint
            entry: RemoteEntry | None = RemoteEntry(node.name, False, node.size, node.mtime)
            if keep_data and not fast:
                try:
                    entry = await self._storage.stat(node.path)
                except FileNotFoundError:
                    entry = None
            if entry is not None:
                remote = Fingerprint.of(entry, fast=fast, mtime_is_slow=self._slow_modtime)
        item = await cache.acquire(node.path, remote, node.mtime)
        node.follow(item)
        return item

    async def _wait_uploaded(self, node: Node) -> None:
        await node.uploads_landed()
        if not node.on_remote:
            raise OSError(errno.ENOENT, f"{node.path!r} is still being written")

    def _write_handle(self, node: Node, truncate: bool) -> WriteHandle:
        return WriteHandle(
            node,
            self._storage,
            self._options,
            truncate=truncate,
            on_committed=self._committed,
            on_failed=self._upload_failed,
            set_mtime=self._apply_mtime,
        )

    def _committed(self, node: Node) -> None:
        node.on_remote = True
        if not node.unlinked and node.parent is not None:
            self._tree.attach(node.parent, node)
        if self._after_commit is not None:
            self._after_commit(node)

    def _upload_failed(self, node: Node) -> None:
        # A new file that never reached the remote: drop it, as rclone does.
        if node.writers == 0:
            self._tree.detach(node)

    async def _apply_mtime(self, node: Node, mtime: float) -> None:
        if self._options.no_modtime:
            return
        try:
            await self._storage.set_mtime(node.path, mtime)
            node.mtime = mtime
        except OSError as exc:
            logger.warning("{}: could not set the modification time: {!r}", node.path, exc)


def open_request(flags: int, *, exists: bool) -> OpenRequest:
    """What open(2)'s flags ask for, as the cache policy reads it."""
    access = flags & os.O_ACCMODE
    return OpenRequest(
        readable=access in (os.O_RDONLY, os.O_RDWR),
        writable=access in (os.O_WRONLY, os.O_RDWR),
        truncate=bool(flags & os.O_TRUNC),
        append=bool(flags & os.O_APPEND),
        create=bool(flags & os.O_CREAT),
        exists=exists,
    )
