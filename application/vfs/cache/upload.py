"""The upload of one dirty item: the missing parts are downloaded first, then the
data file is sent (or its stream committed), the modification time set, and
the result checked against the remote (unless --no-checksum)."""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from application.ports import CacheFile, RemoteStorage
from application.vfs.cache.item import CacheItem
from application.vfs.cache.streams import UPLOAD_PIECE, Stream, Streams, abort_quietly
from domain.cache_record import CacheRecord
from domain.fingerprint import Fingerprint
from domain.volume import VfsOptions

UploadedCallback = Callable[[str, CacheRecord], None]


@dataclass
class UploadProgress:
    """An upload moving bytes now (read by `rc vfs/queue` and `cloudvol status`)."""

    total: int
    sent: int = 0
    stream: Stream | None = None  # sent while written: its own count is the progress

    @property
    def bytes_sent(self) -> int:
        return self.stream.sent if self.stream is not None else self.sent


class Uploader:
    def __init__(
        self,
        storage: RemoteStorage,
        options: VfsOptions,
        streams: Streams,
        on_uploaded: UploadedCallback | None = None,
    ) -> None:
        self._storage = storage
        self._options = options
        self._streams = streams
        self._on_uploaded = on_uploaded
        self.progress: dict[str, UploadProgress] = {}  # by path, while sending
        self.completed = 0
        self.bytes_uploaded = 0

    async def upload(self, item: CacheItem) -> None:
        if not item.dirty or item.removed:
            return
        path, generation = item.path, item.generation
        stream = self._streams.claim(item)
        streamed = False
        progress: UploadProgress | None = None
        try:
            async with item.in_use() as file:
                size = item.size
                # Parts never downloaded come from the remote.
                await item.downloads.fill(0, size)
                started = time.monotonic()
                progress = self.progress[path] = UploadProgress(size, stream=stream)
                if stream is not None:
                    streamed = await self._streams.commit(stream, size)
                if not streamed:
                    progress.stream = None
                    await self._send_remaking_dirs(path, file, size, progress)
                fingerprint = await self._after_upload(path, size, item.mtime)
                self.completed += 1
                self.bytes_uploaded += size
        finally:
            if progress is not None and self.progress.get(path) is progress:
                del self.progress[path]
            if stream is not None:
                await self._streams.release(stream)  # nothing left to do once committed
        logger.debug(
            "{}: uploaded {} bytes in {:.2f} s{}",
            path,
            size,
            time.monotonic() - started,
            " (streamed while written)" if streamed else "",
        )
        if item.generation != generation or item.removed:
            return  # changed meanwhile: the new content has its own upload coming
        await item.uploaded(fingerprint)
        if self._on_uploaded is not None:
            self._on_uploaded(path, item.record)

    async def _send_remaking_dirs(
        self, path: str, file: CacheFile, size: int, progress: UploadProgress
    ) -> None:
        try:
            await self._send(path, file, size, progress)
        except FileNotFoundError:
            # Its directory went from the remote meanwhile: like rclone, make it
            # again (and its parents) and upload once more.
            parent = path.rpartition("/")[0]
            if not parent:
                raise
            logger.warning("{}: the remote directory {} is gone: recreating it", path, parent)
            await self._make_dirs(parent)
            await self._send(path, file, size, progress)

    async def _send(self, path: str, file: CacheFile, size: int, progress: UploadProgress) -> None:
        """Upload `size` bytes of the data file to `path`."""
        writer = await self._storage.open_writer(path)
        try:
            pos = progress.sent = 0
            while pos < size:
                data = file.pread(pos, min(UPLOAD_PIECE, size - pos))
                if not data:
                    raise OSError(errno.EIO, f"{path}: cache file shorter than {size}")
                await writer.write(data)
                pos += len(data)
                progress.sent = pos
            await writer.commit()
        except BaseException:
            await abort_quietly(writer)
            raise

    async def _make_dirs(self, directory: str) -> None:
        """mkdir -p on the remote."""
        parts = directory.split("/")
        for i in range(1, len(parts) + 1):
            with contextlib.suppress(FileExistsError):
                await self._storage.mkdir("/".join(parts[:i]))

    async def _after_upload(self, path: str, size: int, mtime: float) -> Fingerprint:
        """Set the modification time, then check the upload (unless --no-checksum):
        the remote must report the size uploaded. Returns the new fingerprint."""
        mtime_set = False
        if not self._options.no_modtime:
            try:
                await self._storage.set_mtime(path, mtime)
                mtime_set = True
            except OSError as exc:
                logger.warning("{}: could not set the modification time: {!r}", path, exc)
        if self._options.no_checksum:
            return Fingerprint(size, mtime if mtime_set else None, None)
        entry = await self._storage.stat(path)
        if entry.size != size:
            raise OSError(
                errno.EIO, f"{path}: the remote holds {entry.size} bytes after uploading {size}"
            )
        return Fingerprint(entry.size, entry.mtime, None)
