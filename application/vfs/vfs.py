"""The VFS engine: a file-system view of a `RemoteStorage`, driven by inode numbers.

It follows rclone's VFS: a directory cache (`tree`) whose listings stay fresh
for `dir_cache_time` and are patched in place by changes made through the VFS;
opens served uncached or through the on-disk file cache (`opening`), whose dirty
files show in listings with their local size until they are uploaded. Without a
cache directory the cache is a `NullCache`. Every public method raises only
`OSError` with an errno, ready for a FUSE reply.

Lifecycle: `start()` loads the cache (uploading what a killed worker left
dirty); `aclose()` releases the handles still open; `drain()` then uploads
everything pending; `stop()` cancels background work.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import Callable

from loguru import logger

from application.ports import CacheStore, RemoteStorage
from application.vfs.attributes import AttributeChanges
from application.vfs.cache import VfsCache
from application.vfs.cache.null import FileCache, NullCache
from application.vfs.errors import errno_boundary
from application.vfs.handles import Handle
from application.vfs.hard_links import HardLinks
from application.vfs.metadata import MetadataKeeper
from application.vfs.metadata_files import BytesHandle, MetadataFiles
from application.vfs.name_changes import NameChanges
from application.vfs.nodes import ROOT_INODE, Node, NodeAttr
from application.vfs.opening import FileOpener
from application.vfs.statfs import FsStats, fs_stats
from application.vfs.symlinks import Symlinks
from application.vfs.tree import DirectoryTree
from application.vfs.usage import RemoteUsage
from domain.cache_record import CacheRecord
from domain.errors import OptionError
from domain.filters import Filter
from domain.metadata import FileMetadata
from domain.paths import join
from domain.posix_names import check_name_length
from domain.volume import CacheMode, VfsOptions


class Vfs:
    """The VFS over one remote. Not thread-safe: use it from one event loop."""

    def __init__(
        self,
        storage: RemoteStorage,
        options: VfsOptions,
        clock: Callable[[], float] = time.monotonic,
        *,
        cache_store: CacheStore | None = None,
        slow_modtime: bool = False,
        wall_clock: Callable[[], float] = time.time,
        upload_retry_base: float = 1.0,
        path_filter: Filter | None = None,
    ) -> None:
        """`cache_store`: the volume's disk cache, needed by every cache mode but
        off (where it is still loaded, to upload what a killed worker left).
        `slow_modtime`: the backend needs an extra call per file for modification
        times (S3 and the like), so --vfs-fast-fingerprint leaves them out."""
        if options.cache_mode is not CacheMode.OFF and cache_store is None:
            raise OptionError(f"vfs-cache-mode {options.cache_mode.value} needs a cache directory")
        self._storage = storage
        self.options = options
        self.cache: FileCache = NullCache()
        if cache_store is not None:
            self.cache = VfsCache(
                cache_store,
                storage,
                options,
                wall_clock=wall_clock,
                on_uploaded=self._cache_uploaded,
                retry_base=upload_retry_base,
            )
        self._tree = DirectoryTree(storage, options, self.cache, clock, path_filter)
        self._metadata = MetadataKeeper(storage, options)
        self._usage = (
            RemoteUsage(storage, options.dir_cache_time, clock) if options.used_is_size else None
        )
        self._refresh: asyncio.Task[None] | None = None
        self._opener = FileOpener(
            storage,
            options,
            self.cache,
            self._tree,
            slow_modtime=slow_modtime,
            after_commit=self._metadata.after_upload,
        )
        self._symlinks = Symlinks(storage, options, self._tree)
        self._metadata_files = MetadataFiles(options, self._tree, self._metadata)
        self._attributes = AttributeChanges(
            storage, options, self.cache, self._opener, self._metadata
        )
        self._hard_links = HardLinks(
            storage, self.cache, self._tree, self._metadata, self._settle_commit
        )
        self._names = NameChanges(
            storage, self.cache, self._tree, self._metadata, self._settle_commit
        )
        self._clock = clock
        self._handles: dict[int, Handle] = {}
        self._dir_handles: dict[int, list[tuple[str, Node]]] = {}
        self._next_fh = 1

    @property
    def root_inode(self) -> int:
        return ROOT_INODE

    def forget_all(self) -> None:
        """Mark every cached listing stale (SIGHUP); inode numbers stay."""
        self._tree.forget_all()

    def forget_path(self, path: str) -> bool:
        """rclone's `vfs/forget file=` or `dir=`: the listing holding `path` (a
        directory's own, a file's parent's) is read again at its next use. False
        when nothing about `path` is cached."""
        node = self._tree.node_at(path.strip("/"))
        if node is None:
            return False
        target = node if node.is_dir else node.parent
        if target is not None:
            target.listed_at = None
        return True

    async def refresh(self, path: str, *, recursive: bool) -> int:
        """rclone's `vfs/refresh`: read the listing of the directory `path` again
        now (and of every directory under it, `recursive`); returns how many
        listings were read. Raises OSError when it is not a directory."""
        node = self._tree.node_at(path.strip("/"))
        if node is None:
            attr = await self.resolve(path)
            node = self._tree.node(attr.inode)
        if not node.is_dir:
            raise OSError(errno.ENOTDIR, f"{path!r} is not a directory")
        todo, read = [node], 0
        while todo:
            directory = todo.pop()
            directory.listed_at = None
            children = await self._tree.listing(directory)
            read += 1
            if recursive:
                todo.extend(child for child in children.values() if child.is_dir)
        return read

    def _cache_uploaded(self, path: str, record: CacheRecord) -> None:
        node = self._tree.node_at(path)
        if node is not None and not node.is_dir:
            node.settle_local()
            node.on_remote = True
            self._metadata.after_upload(node)

    def _need_writable(self, what: str) -> None:
        if self.options.read_only:
            raise OSError(errno.EROFS, f"{what}: read-only file system")

    # ----- metadata operations ------------------------------------------------------

    @errno_boundary
    async def lookup(self, parent_inode: int, name: str) -> NodeAttr:
        parent = self._tree.directory(parent_inode)
        if name == ".":
            return parent.attr(self.options)
        if name == "..":
            return (parent.parent or parent).attr(self.options)
        check_name_length(name)
        try:
            node = await self._tree.child(parent, name)
        except FileNotFoundError:
            virtual = await self._metadata_files.lookup(parent, name)
            if virtual is None:
                raise
            return virtual.attr(self.options)
        await self._settle_commit(node, must=False)  # its size once committed
        await self._metadata.learn(node)
        return node.attr(self.options)

    @errno_boundary
    async def getattr(self, inode: int) -> NodeAttr:
        return self._tree.node(inode).attr(self.options)

    @errno_boundary
    async def resolve(self, path: str) -> NodeAttr:
        """The attributes of `path` (relative to the root), looked up name by name."""
        node = self._tree.root
        for name in (p for p in path.split("/") if p):
            if not node.is_dir:
                raise OSError(errno.ENOTDIR, f"{node.path!r} is not a directory")
            node = await self._tree.child(node, name)
        return node.attr(self.options)

    @errno_boundary
    async def setattr(
        self,
        inode: int,
        *,
        size: int | None = None,
        mtime: float | None = None,
        fh: int | None = None,
        mode_change: bool = False,
        metadata: FileMetadata | None = None,
    ) -> NodeAttr:
        """Truncate and set times. Mode, owner and access time (`metadata`,
        `mode_change` saying one was asked for) are kept with --metadata, and
        else accepted and ignored, as rclone does: permissions then come from
        the mount's options."""
        node = self._tree.node(inode)
        changes = metadata or FileMetadata()
        if node.virtual_content is not None:
            raise OSError(errno.EACCES, f"{node.path!r} is read-only")
        if size is not None or mtime is not None or mode_change or not changes.empty:
            self._need_writable("setattr")
        attributes = self._attributes
        if size is not None:
            if fh is None:
                await self._settle_commit(node)
            handle = self._handles.get(fh) if fh is not None else None
            await attributes.truncate(node, size, handle)
        if mtime is not None and not self.options.no_modtime:
            await attributes.set_mtime(node, mtime)
        if not changes.empty:
            remote_current = attributes.remote_current(node)
            await self._metadata.change(node, changes, remote_current=remote_current)
        return node.attr(self.options)

    @errno_boundary
    async def opendir(self, inode: int) -> int:
        """A directory handle holding a snapshot of the listing, so that readdir
        offsets stay valid however the directory changes meanwhile."""
        d = self._tree.directory(inode)
        entries = list((await self._tree.listing(d)).items())
        fh = self._next_fh
        self._next_fh += 1
        self._dir_handles[fh] = entries
        return fh

    @errno_boundary
    async def readdir(self, fh: int, start: int) -> list[tuple[str, NodeAttr]]:
        """Entries from index `start` of the snapshot; the entry at index i is
        resumed with start = i + 1."""
        try:
            entries = self._dir_handles[fh]
        except KeyError:
            raise OSError(errno.EBADF, f"unknown directory handle {fh}") from None
        return [(name, node.attr(self.options)) for name, node in entries[start:]]

    async def releasedir(self, fh: int) -> None:
        self._dir_handles.pop(fh, None)

    @errno_boundary
    async def mkdir(
        self, parent_inode: int, name: str, *, mode: int = 0o777, uid: int = 0, gid: int = 0
    ) -> NodeAttr:
        """`mode`, `uid`, `gid`: the creator's, kept with --metadata."""
        self._need_writable("mkdir")
        check_name_length(name)
        parent = self._tree.directory(parent_inode)
        path = join(parent.path, name)
        if self._tree.find(await self._tree.listing(parent), name) is not None:
            raise OSError(errno.EEXIST, f"{path!r} exists")
        await self._storage.mkdir(path)
        node = self._tree.new_node(parent, name, True, 0, time.time())
        node.children = {}  # known empty: no need to list it
        node.listed_at = self._clock()
        self._tree.attach(parent, node)
        self._metadata.touched(parent)
        self._metadata.created(node, mode, uid, gid)
        await self._metadata.apply_now(node)
        return node.attr(self.options)

    @errno_boundary
    async def symlink(
        self, parent_inode: int, name: str, target: str, *, uid: int = 0, gid: int = 0
    ) -> NodeAttr:
        """A symlink, stored as `name.rclonelink` (needs --links)."""
        self._need_writable("symlink")
        parent = self._tree.directory(parent_inode)
        if self._tree.find(await self._tree.listing(parent), name) is not None:
            raise OSError(errno.EEXIST, f"{join(parent.path, name)!r} exists")
        node = await self._symlinks.create(parent, name, target)
        self._metadata.touched(parent)
        if self._metadata.enabled:
            # A link's mode is --link-perms; its owner is kept like a file's.
            node.meta = FileMetadata(uid=uid, gid=gid)
            node.meta_dirty = True
            await self._metadata.apply_now(node)
        return node.attr(self.options)

    @errno_boundary
    async def readlink(self, inode: int) -> str:
        return await self._symlinks.target(self._tree.node(inode))

    @errno_boundary
    async def link(self, inode: int, new_parent_inode: int, new_name: str) -> NodeAttr:
        """A hard link (see `hard_links`)."""
        self._need_writable("link")
        node = self._tree.node(inode)
        parent = self._tree.directory(new_parent_inode)
        alias = await self._hard_links.link(node, parent, new_name)
        return alias.attr(self.options)

    @errno_boundary
    async def rmdir(self, parent_inode: int, name: str) -> None:
        self._need_writable("rmdir")
        check_name_length(name)
        await self._names.rmdir(self._tree.directory(parent_inode), name)

    @errno_boundary
    async def unlink(self, parent_inode: int, name: str) -> None:
        self._need_writable("unlink")
        check_name_length(name)
        await self._names.unlink(self._tree.directory(parent_inode), name)

    @errno_boundary
    async def rename(
        self,
        old_parent: int,
        old_name: str,
        new_parent: int,
        new_name: str,
        *,
        no_replace: bool = False,
        exchange: bool = False,
    ) -> None:
        self._need_writable("rename")
        if exchange:
            raise OSError(errno.EINVAL, "RENAME_EXCHANGE is not supported")
        check_name_length(old_name)
        await self._names.rename(
            self._tree.directory(old_parent),
            old_name,
            self._tree.directory(new_parent),
            new_name,
            no_replace=no_replace,
        )

    # ----- files ----------------------------------------------------------------------

    def _new_fh(self, handle: Handle) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = handle
        return fh

    @errno_boundary
    async def create(
        self,
        parent_inode: int,
        name: str,
        flags: int,
        *,
        mode: int = 0o666,
        uid: int = 0,
        gid: int = 0,
    ) -> tuple[int, NodeAttr]:
        """Create and open a file; it is listed at once and is on the remote, if
        only empty, once the handle is flushed (closed) or released. `mode`,
        `uid`, `gid`: the creator's, kept with --metadata."""
        self._need_writable("create")
        check_name_length(name)
        parent = self._tree.directory(parent_inode)
        existing = self._tree.find(await self._tree.listing(parent), name)
        if existing is not None:
            if flags & os.O_EXCL:
                raise OSError(errno.EEXIST, f"{existing.path!r} exists")
            if existing.is_dir:
                raise OSError(errno.EISDIR, f"{existing.path!r} is a directory")
            fh = await self._open(existing, flags)
            return fh, existing.attr(self.options)
        node, handle = await self._opener.create(parent, name, flags)
        self._metadata.created(node, mode, uid, gid)
        return self._new_fh(handle), node.attr(self.options)

    @errno_boundary
    async def open(self, inode: int, flags: int) -> int:
        return await self._open(self._tree.node(inode), flags)

    async def _open(self, node: Node, flags: int) -> int:
        if node.is_dir:
            raise OSError(errno.EISDIR, f"{node.path!r} is a directory")
        if node.virtual_content is not None:
            return self._new_fh(BytesHandle(node, flags))
        # A commit in progress would race this open's view of the remote file.
        await self._settle_commit(node, must=False)
        return self._new_fh(await self._opener.open(node, flags))

    async def _settle_commit(self, node: Node, *, must: bool = True) -> None:
        """An uncached upload whose handle was closed commits under the name it
        was opened with: let it land before the name is opened, looked up,
        changed or removed. `must`: EBUSY if it takes too long, else go on."""
        if not await node.commits_landed() and must:
            logger.error("{}: still being uploaded", node.path)
            raise OSError(errno.EBUSY, "file is being uploaded")

    def _handle(self, fh: int) -> Handle:
        try:
            return self._handles[fh]
        except KeyError:
            raise OSError(errno.EBADF, f"unknown file handle {fh}") from None

    @errno_boundary
    async def read(self, fh: int, offset: int, size: int) -> bytes:
        return await self._handle(fh).read(offset, size)

    @errno_boundary
    async def write(self, fh: int, offset: int, data: bytes) -> int:
        return await self._handle(fh).write(offset, data)

    @errno_boundary
    async def flush(self, fh: int) -> None:
        await self._handle(fh).flush()

    @errno_boundary
    async def release(self, fh: int) -> None:
        handle = self._handles.pop(fh, None)
        if handle is None:
            raise OSError(errno.EBADF, f"unknown file handle {fh}")
        await handle.release()

    @errno_boundary
    async def fsync(self, fh: int) -> None:
        # Cached: durable in the cache, recorded dirty, so never lost.
        await self._handle(fh).fsync()

    def statfs(self) -> FsStats:
        return fs_stats(self.options, self._usage.used if self._usage is not None else 0)

    async def start(self) -> None:
        """Load the disk cache; what a killed worker left dirty starts uploading."""
        await self.cache.start()
        if self._usage is not None:
            _ = self._usage.used  # the first walk starts now, not at the first df
        if self.options.refresh:
            self._refresh = asyncio.get_running_loop().create_task(self._refresh_tree())

    async def _refresh_tree(self) -> None:
        try:
            listed = await self._tree.refresh()
        except OSError as exc:
            logger.error("vfs-refresh: reading the tree failed: {}", exc)
            return
        logger.info("vfs-refresh: {} directories read", listed)

    async def wait_background(self) -> None:
        """Wait for --vfs-refresh and --vfs-used-is-size's walks in progress."""
        if self._refresh is not None:
            await asyncio.gather(self._refresh, return_exceptions=True)
        if self._usage is not None:
            await self._usage.wait()

    async def drain(self) -> None:
        """Upload every pending file now and wait (after the mount has gone)."""
        await self.cache.drain()
        await self._metadata.drain()

    async def stop(self) -> None:
        """Cancel background work; pending uploads stay recorded on disk."""
        task, self._refresh = self._refresh, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._usage is not None:
            await self._usage.stop()
        await self.cache.stop()

    def pending_uploads(self) -> int:
        return self.cache.pending_uploads()

    async def aclose(self) -> None:
        """Release every handle still open (committing uploads), for shutdown.
        The storage is not closed: its owner does that."""
        for fh in list(self._handles):
            handle = self._handles.pop(fh)
            try:
                await handle.release()
            except Exception as exc:
                logger.error("{}: release at shutdown failed: {!r}", handle.node.path, exc)
        self._dir_handles.clear()


__all__ = ["FsStats", "Handle", "NodeAttr", "Vfs"]
