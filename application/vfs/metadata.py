"""`--metadata`: chmod, chown and utimensat kept on the remote.

A change to a file the remote holds as the VFS shows it goes there at once. A
file with changes still to upload (new, dirty in the cache, or being written)
keeps the change on its node and gets it after each upload: an upload replaces
the remote file, and with it the mode and owner the server had.

Without `--metadata`, modes and owners come from --file-perms, --dir-perms,
--uid and --gid, and chmod and chown are accepted and have no effect, as with
rclone's mount.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Coroutine
from typing import Any

from loguru import logger

from application.ports import RemoteStorage, SupportsMetadata
from application.vfs.nodes import Node
from domain.metadata import FileMetadata
from domain.volume import VfsOptions


class MetadataKeeper:
    def __init__(self, storage: RemoteStorage, options: VfsOptions) -> None:
        self._options = options
        self._storage = storage
        self._store: SupportsMetadata | None = (
            storage if isinstance(storage, SupportsMetadata) else None
        )
        self._said_unsupported = False
        self._background: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self._options.metadata

    def created(self, node: Node, mode: int, uid: int, gid: int) -> None:
        """A node made here takes the mode and owner of its creator, as on a
        local disk; the remote gets them with the file's first upload (a file)
        or at once (`apply_now`, a directory or link)."""
        if not self.enabled:
            return
        node.meta = FileMetadata(mode=mode & 0o7777, uid=uid, gid=gid)
        node.meta_dirty = node.meta_known = True

    async def change(self, node: Node, changes: FileMetadata, *, remote_current: bool) -> None:
        """Apply chmod/chown/atime `changes` to `node`. `remote_current`: the
        remote file is the one the user sees (no upload pending), so the change
        goes there now; otherwise it waits for the next upload."""
        if not self.enabled or changes.empty:
            return
        node.meta = node.meta.merged(changes)
        if remote_current:
            await self._store_on_remote(node, changes)
        else:
            node.meta_dirty = True

    async def learn(self, node: Node) -> None:
        """Read the metadata of a file whose listing had none (object stores
        keep it per object: one request per file, at its first lookup)."""
        if not self.enabled or node.meta_known or node.is_dir or node.is_link or not node.on_remote:
            return
        node.meta_known = True
        try:
            node.take_remote_details(await self._storage.stat(node.remote_path))
        except FileNotFoundError:
            pass  # gone meanwhile: the next listing says so

    async def apply_now(self, node: Node) -> None:
        """Send what the node has to the remote (after a create or an upload)."""
        if not self.enabled or not node.meta_dirty:
            return
        await self._store_on_remote(node, node.meta)

    def after_upload(self, node: Node) -> None:
        """An upload replaced the remote file: give it the node's mode and owner
        again, and its directory the time a utimensat gave it (the upload's
        rename changed it). In the background: uploads report from a plain
        callback."""
        if not self.enabled:
            return
        if not node.meta.empty:
            node.meta_dirty = True
        self._in_background(self._after_upload(node))
        if node.parent is not None:
            self.touched(node.parent)

    def touched(self, directory: Node) -> None:
        """An entry of `directory` changed on the server, which moved its time:
        put back the time a utimensat set (the VFS shows that one, and keeps
        showing it, as rclone's VFS does not move directory times)."""
        if self.enabled and directory.mtime_pinned:
            self._in_background(self._restore_time(directory))

    def pin_directory_time(self, node: Node) -> None:
        """A directory's time was set: keep it across the changes made in it."""
        if self.enabled:
            node.mtime_pinned = True

    def _in_background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _after_upload(self, node: Node) -> None:
        if node.unlinked or not node.meta_dirty:
            return
        try:
            await self._store_on_remote(node, node.meta)
        except OSError as exc:
            logger.warning("{}: could not keep mode, owner or times: {!r}", node.path, exc)

    async def _restore_time(self, directory: Node) -> None:
        try:
            await self._store_on_remote(directory, FileMetadata(mtime=directory.mtime))
        except OSError as exc:
            logger.warning("{}: could not keep the directory's time: {!r}", directory.path, exc)

    async def drain(self) -> None:
        """Wait for the metadata still being sent after uploads."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _store_on_remote(self, node: Node, metadata: FileMetadata) -> None:
        # The node's own mtime travels with an atime: SFTP sets both at once.
        if metadata.atime is not None and metadata.mtime is None:
            metadata = FileMetadata(
                metadata.mode, metadata.uid, metadata.gid, metadata.atime, node.mtime
            )
        if self._store is None:
            if not self._said_unsupported:
                self._said_unsupported = True
                logger.info(
                    "--metadata: this remote cannot keep modes, owners or access times; "
                    "they are kept in memory only until the mount ends"
                )
            node.meta_dirty = False
            return
        try:
            await self._store.set_metadata(node.remote_path, metadata)
        except PermissionError as exc:
            # chown by a user the server does not let us become: a local disk
            # says EPERM too.
            raise OSError(errno.EPERM, f"{node.path}: {exc.strerror}") from exc
        node.meta_dirty = False
