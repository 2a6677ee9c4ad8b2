"""pyfuse3 `Operations` that translate kernel requests into `Vfs` calls.

Names arrive as bytes and are decoded with the file-system encoding (undecodable
bytes survive as surrogates); errors leave as `FUSEError` with the VFS's errno.
Lookup counts are not tracked: the VFS keeps every node it has handed out, which
is what keeps inode numbers stable for the mount's life.
"""

from __future__ import annotations

import errno
import functools
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import pyfuse3
from loguru import logger
from pyfuse3 import (
    EntryAttributes,
    FileHandleT,
    FileInfo,
    FileNameT,
    FlagT,
    FUSEError,
    InodeT,
    ModeT,
    ReaddirToken,
    RequestContext,
    SetattrFields,
    StatvfsData,
)

from adapters.fuse.op_stats import FUSE_OPERATIONS
from application.vfs import NodeAttr, Vfs
from domain.metadata import FileMetadata

P = ParamSpec("P")
T = TypeVar("T")

_NS = 1_000_000_000


def _fuse_errors(
    fn: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """The only exception a handler may raise is FUSEError."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        started, failed = time.monotonic(), True
        try:
            result = await fn(*args, **kwargs)
            failed = False
            return result
        except FUSEError:
            raise
        except OSError as exc:
            raise FUSEError(exc.errno or errno.EIO) from exc
        except Exception as exc:
            logger.exception("FUSE {} failed", fn.__name__)
            raise FUSEError(errno.EIO) from exc
        finally:
            FUSE_OPERATIONS.record(fn.__name__, time.monotonic() - started, failed=failed)

    return wrapper


def _name(raw: bytes) -> str:
    return os.fsdecode(raw)


class FuseOperations(pyfuse3.Operations):
    supports_dot_lookup = True

    def __init__(
        self,
        vfs: Vfs,
        attr_timeout: float,
        *,
        write_back_cache: bool = False,
        on_init: Callable[[], None] | None = None,
        direct_io: bool = False,
    ) -> None:
        super().__init__()
        self._vfs = vfs
        self._timeout = attr_timeout
        # pyfuse3 asks the kernel for write-back caching when this is set.
        self.enable_writeback_cache = write_back_cache
        self._on_init = on_init
        # --direct-io: every open bypasses the kernel's page cache.
        self._direct_io = direct_io

    def init(self) -> None:
        # Called once the kernel's INIT has been answered: the mount serves requests.
        if self._on_init is not None:
            self._on_init()

    def _entry(self, attr: NodeAttr) -> EntryAttributes:
        entry = EntryAttributes()
        entry.st_ino = attr.inode
        entry.generation = 0
        entry.entry_timeout = self._timeout
        entry.attr_timeout = self._timeout
        entry.st_mode = attr.mode
        entry.st_nlink = attr.nlink
        entry.st_uid = attr.uid
        entry.st_gid = attr.gid
        entry.st_rdev = 0
        entry.st_size = attr.size
        entry.st_blksize = 128 * 1024  # the kernel's request size: a hint for stdio buffers
        entry.st_blocks = attr.blocks
        mtime_ns = int(attr.mtime * _NS)
        entry.st_atime_ns = mtime_ns if attr.atime is None else int(attr.atime * _NS)
        entry.st_mtime_ns = mtime_ns
        entry.st_ctime_ns = mtime_ns
        return entry

    @_fuse_errors
    async def lookup(
        self, parent_inode: InodeT, name: FileNameT, ctx: RequestContext
    ) -> EntryAttributes:
        return self._entry(await self._vfs.lookup(parent_inode, _name(name)))

    async def forget(self, inode_list: Sequence[tuple[InodeT, int]]) -> None:
        pass

    @_fuse_errors
    async def getattr(self, inode: InodeT, ctx: RequestContext) -> EntryAttributes:
        return self._entry(await self._vfs.getattr(inode))

    @_fuse_errors
    async def setattr(
        self,
        inode: InodeT,
        attr: EntryAttributes,
        fields: SetattrFields,
        fh: FileHandleT | None,
        ctx: RequestContext,
    ) -> EntryAttributes:
        metadata = FileMetadata(
            mode=attr.st_mode & 0o7777 if fields.update_mode else None,
            uid=attr.st_uid if fields.update_uid else None,
            gid=attr.st_gid if fields.update_gid else None,
            atime=attr.st_atime_ns / _NS if fields.update_atime else None,
        )
        result = await self._vfs.setattr(
            inode,
            size=attr.st_size if fields.update_size else None,
            mtime=attr.st_mtime_ns / _NS if fields.update_mtime else None,
            fh=fh,
            mode_change=fields.update_mode or fields.update_uid or fields.update_gid,
            metadata=metadata,
        )
        return self._entry(result)

    @_fuse_errors
    async def opendir(self, inode: InodeT, ctx: RequestContext) -> FileHandleT:
        return await self._vfs.opendir(inode)

    @_fuse_errors
    async def readdir(self, fh: FileHandleT, start_id: int, token: ReaddirToken) -> None:
        for index, (name, attr) in enumerate(await self._vfs.readdir(fh, start_id)):
            if not pyfuse3.readdir_reply(
                token, os.fsencode(name), self._entry(attr), start_id + index + 1
            ):
                break

    @_fuse_errors
    async def releasedir(self, fh: FileHandleT) -> None:
        await self._vfs.releasedir(fh)

    @_fuse_errors
    async def mkdir(
        self, parent_inode: InodeT, name: FileNameT, mode: ModeT, ctx: RequestContext
    ) -> EntryAttributes:
        return self._entry(
            await self._vfs.mkdir(
                parent_inode, _name(name), mode=mode & ~ctx.umask, uid=ctx.uid, gid=ctx.gid
            )
        )

    @_fuse_errors
    async def symlink(
        self, parent_inode: InodeT, name: FileNameT, target: FileNameT, ctx: RequestContext
    ) -> EntryAttributes:
        attr = await self._vfs.symlink(
            parent_inode, _name(name), os.fsdecode(target), uid=ctx.uid, gid=ctx.gid
        )
        return self._entry(attr)

    @_fuse_errors
    async def readlink(self, inode: InodeT, ctx: RequestContext) -> FileNameT:
        return FileNameT(os.fsencode(await self._vfs.readlink(inode)))

    @_fuse_errors
    async def link(
        self, inode: InodeT, new_parent_inode: InodeT, new_name: FileNameT, ctx: RequestContext
    ) -> EntryAttributes:
        return self._entry(await self._vfs.link(inode, new_parent_inode, _name(new_name)))

    @_fuse_errors
    async def mknod(
        self, parent_inode: InodeT, name: FileNameT, mode: ModeT, rdev: int, ctx: RequestContext
    ) -> EntryAttributes:
        # No remote here stores FIFOs, sockets or devices; a local disk that
        # cannot either says EPERM (ENOSYS would read as a broken mount).
        raise FUSEError(errno.EPERM)

    @_fuse_errors
    async def rmdir(self, parent_inode: InodeT, name: FileNameT, ctx: RequestContext) -> None:
        await self._vfs.rmdir(parent_inode, _name(name))

    @_fuse_errors
    async def unlink(self, parent_inode: InodeT, name: FileNameT, ctx: RequestContext) -> None:
        await self._vfs.unlink(parent_inode, _name(name))

    @_fuse_errors
    async def rename(
        self,
        parent_inode_old: InodeT,
        name_old: FileNameT,
        parent_inode_new: InodeT,
        name_new: FileNameT,
        flags: FlagT,
        ctx: RequestContext,
    ) -> None:
        await self._vfs.rename(
            parent_inode_old,
            _name(name_old),
            parent_inode_new,
            _name(name_new),
            no_replace=bool(flags & pyfuse3.RENAME_NOREPLACE),
            exchange=bool(flags & pyfuse3.RENAME_EXCHANGE),
        )

    @_fuse_errors
    async def open(self, inode: InodeT, flags: FlagT, ctx: RequestContext) -> FileInfo:
        return FileInfo(fh=await self._vfs.open(inode, flags), direct_io=self._direct_io)

    @_fuse_errors
    async def create(
        self,
        parent_inode: InodeT,
        name: FileNameT,
        mode: ModeT,
        flags: FlagT,
        ctx: RequestContext,
    ) -> tuple[FileInfo, EntryAttributes]:
        fh, attr = await self._vfs.create(
            parent_inode, _name(name), flags, mode=mode & ~ctx.umask, uid=ctx.uid, gid=ctx.gid
        )
        return FileInfo(fh=fh, direct_io=self._direct_io), self._entry(attr)

    @_fuse_errors
    async def read(self, fh: FileHandleT, off: int, size: int) -> bytes:
        return await self._vfs.read(fh, off, size)

    @_fuse_errors
    async def write(self, fh: FileHandleT, off: int, buf: bytes) -> int:
        return await self._vfs.write(fh, off, buf)

    @_fuse_errors
    async def flush(self, fh: FileHandleT) -> None:
        await self._vfs.flush(fh)

    @_fuse_errors
    async def release(self, fh: FileHandleT) -> None:
        # The kernel drops this reply; the VFS has logged any failed upload.
        await self._vfs.release(fh)

    @_fuse_errors
    async def fsync(self, fh: FileHandleT, datasync: bool) -> None:
        await self._vfs.fsync(fh)

    @_fuse_errors
    async def statfs(self, ctx: RequestContext) -> StatvfsData:
        stats = self._vfs.statfs()
        out = StatvfsData()
        out.f_bsize = stats.block_size
        out.f_frsize = stats.block_size
        out.f_blocks = stats.blocks
        out.f_bfree = stats.blocks_free
        out.f_bavail = stats.blocks_avail
        out.f_files = stats.files
        out.f_ffree = stats.files_free
        out.f_favail = stats.files_free
        out.f_namemax = stats.name_max
        return out
