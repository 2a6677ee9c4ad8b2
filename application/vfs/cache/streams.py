"""Streamed uploads: a file written sequentially from empty is sent to a remote
writer (its hidden temporary file) while it is being written, once it passes
`STREAM_AFTER`; the upload due at write-back then only sends the tail and
commits. Any other change aborts the stream, and the upload sends the whole
file as usual.

This module alone decides whether a stream still carries exactly the item's
content: it follows each item's sequential run and the content generation it
was last seen at.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno

from loguru import logger

from application.ports import RemoteStorage, RemoteWriter
from application.vfs.cache.item import CacheItem

UPLOAD_PIECE = 4 * 1024 * 1024
# Below this size, starting early saves little and would only add requests
# while the file is written.
STREAM_AFTER = 4 * 1024 * 1024


class _Sequence:
    """The bytes [0, end) are the item's whole content, as of `generation`."""

    __slots__ = ("end", "generation", "stream")

    def __init__(self, end: int, generation: int) -> None:
        self.end = end
        self.generation = generation
        self.stream: Stream | None = None  # following the sequential writes


class Stream:
    """An upload that follows a sequential writer: it sends [0, end) of the data
    file to `writer` as the writes come, and waits for more until an upload
    claims it; that upload then commits the writer."""

    __slots__ = ("claimed", "end", "failed", "item", "path", "sent", "task", "wakeup", "writer")

    def __init__(self, item: CacheItem, end: int) -> None:
        self.item = item
        self.path = item.path  # the writer's target: a rename aborts the stream
        self.end = end  # bytes written so far, all in sequence: what may be sent
        self.sent = 0
        self.writer: RemoteWriter | None = None
        self.wakeup = asyncio.Event()  # set by each write, and by the claim
        self.claimed = False  # no more writes: send up to `end`, then stop
        self.failed = False
        self.task: asyncio.Task[None] | None = None


class Streams:
    def __init__(self, storage: RemoteStorage, transfers: int) -> None:
        self._storage = storage
        self._limit = max(1, transfers)
        self._sequences: dict[CacheItem, _Sequence] = {}
        # Streams still holding a writer or a data file; at most `transfers` start,
        # counted apart from the uploads: a stream may wait long for its writer.
        self._streams: set[Stream] = set()

    def follow_write(self, item: CacheItem, offset: int, length: int, size_before: int) -> bool:
        """Keep track of a sequential writer, and feed or start its stream.
        Returns whether the write continued the sequence. Never waits: this is
        the FUSE write path."""
        sequence = self._sequences.get(item)
        if offset == 0 and size_before == 0:
            self.forget(item)  # a new sequence: nothing before it counts
            sequence = self._sequences[item] = _Sequence(length, item.generation)
        elif sequence is not None and offset == sequence.end == size_before:
            sequence.end += length
        else:
            self.forget(item)
            return False
        stream = sequence.stream
        if stream is not None:
            stream.end = sequence.end
            stream.wakeup.set()
        elif sequence.end >= STREAM_AFTER and not item.removed and len(self._streams) < self._limit:
            sequence.stream = self._start(item, sequence.end)
        return True

    def is_sequential(self, item: CacheItem) -> bool:
        return item in self._sequences

    def changed(self, item: CacheItem, generation_before: int, *, sequential: bool) -> None:
        """The item's content generation moved on from `generation_before`;
        `sequential`: the change kept the sequential run intact (a write that
        continued it, or a change of the time alone)."""
        sequence = self._sequences.get(item)
        if sequence is not None and sequential and sequence.generation == generation_before:
            sequence.generation = item.generation

    def forget(self, item: CacheItem) -> None:
        """The item is no longer written in sequence: abort its stream (in the
        background, so the FUSE write path never waits for the remote)."""
        sequence = self._sequences.pop(item, None)
        if sequence is not None and sequence.stream is not None:
            if sequence.stream.task is not None:
                sequence.stream.task.cancel()  # the task aborts its writer

    async def end(self, item: CacheItem) -> None:
        """Forget the item's sequence and wait until every stream of it has
        aborted, so no temporary file is left behind (or moved by a rename)."""
        self.forget(item)
        for stream in [s for s in self._streams if s.item is item]:
            await _end(stream)

    async def stop(self) -> None:
        """Abort every stream (their temporary files go)."""
        for item in list(self._sequences):
            self.forget(item)
        tasks = [s.task for s in self._streams if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for stream in list(self._streams):
            await _end(stream)

    def claim(self, item: CacheItem) -> Stream | None:
        """Take the item's stream for the upload starting now, if it carries
        exactly the item's content; otherwise abort it."""
        sequence = self._sequences.get(item)
        stream = sequence.stream if sequence is not None else None
        if sequence is None or stream is None:
            return None
        sequence.stream = None
        intact = (
            not stream.failed
            and stream.path == item.path
            and sequence.end == item.size == stream.end
            and sequence.generation == item.generation
            and item.record.ranges.covers(0, item.size)
        )
        if not intact:
            if stream.task is not None:
                stream.task.cancel()
            return None
        stream.claimed = True  # no write comes to it any more: it sends the tail and stops
        stream.wakeup.set()
        return stream

    async def commit(self, stream: Stream, size: int) -> bool:
        """Wait for the claimed stream to send its tail, then commit its writer.
        False if it failed: nothing of it is left, and the caller sends the file
        the usual way."""
        assert stream.task is not None
        # Not awaited directly: a cancel meant for the stream alone must not look
        # like a cancel of the upload. A cancelled upload ends the stream itself.
        await asyncio.wait([stream.task])
        writer, stream.writer = stream.writer, None
        if writer is None or stream.failed or stream.sent != size:
            if writer is not None:
                await abort_quietly(writer)
            return False
        try:
            await writer.commit()
        except BaseException as exc:
            await abort_quietly(writer)
            if not isinstance(exc, Exception):
                raise
            logger.info(
                "{}: committing the upload that followed the writes failed ({!r}); "
                "sending the file again",
                stream.path,
                exc,
            )
            return False
        return True

    async def release(self, stream: Stream) -> None:
        """Done with a claimed stream: abort its writer unless committed."""
        await _end(stream)

    def _start(self, item: CacheItem, end: int) -> Stream:
        stream = Stream(item, end)
        stream.task = asyncio.get_running_loop().create_task(self._send(stream))
        self._streams.add(stream)
        # Removed when done, even if cancelled before it ever ran.
        stream.task.add_done_callback(lambda _task: self._streams.discard(stream))
        return stream

    async def _send(self, stream: Stream) -> None:
        """Send the sequential bytes as they are written, until claimed and caught
        up. A failure aborts the writer and is left to the regular upload."""
        try:
            async with stream.item.in_use() as file:
                writer = stream.writer = await self._storage.open_writer(stream.path)
                while not (stream.claimed and stream.sent >= stream.end):
                    if stream.sent >= stream.end:
                        stream.wakeup.clear()
                        await stream.wakeup.wait()
                        continue
                    data = file.pread(stream.sent, min(UPLOAD_PIECE, stream.end - stream.sent))
                    if not data:
                        raise OSError(errno.EIO, f"{stream.path}: cache file shorter than written")
                    await writer.write(data)
                    stream.sent += len(data)
        except BaseException as exc:
            stream.failed = True
            writer_left, stream.writer = stream.writer, None
            if writer_left is not None:
                await abort_quietly(writer_left)
            if not isinstance(exc, Exception):
                raise
            logger.info(
                "{}: the upload following the writes failed ({!r}); "
                "the file is uploaded whole at write-back",
                stream.path,
                exc,
            )


async def _end(stream: Stream) -> None:
    """Stop the stream and abort its writer, unless committed already."""
    if stream.task is not None:
        stream.task.cancel()
        await asyncio.gather(stream.task, return_exceptions=True)
    writer, stream.writer = stream.writer, None
    if writer is not None:
        await abort_quietly(writer)


async def abort_quietly(writer: RemoteWriter) -> None:
    # Shielded: a cancelled caller must still not leave a temporary file behind.
    with contextlib.suppress(Exception):
        await asyncio.shield(writer.abort())
