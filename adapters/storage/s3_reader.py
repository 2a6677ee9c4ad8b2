"""Streamed reads of an S3 object: a GET's body stays open and serves the reads
that follow on from where it stands (see S3Reader)."""

from __future__ import annotations

import asyncio
import errno
import itertools
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from loguru import logger

from adapters.storage.s3_bucket import S3Bucket
from domain.errors import RemoteUnavailable
from domain.read_ahead import Move, ReadAheadPolicy

# A stream's first GET asks for this much, each next one twice as much (rclone's
# --vfs-read-chunk-size, without a limit).
_FIRST_WINDOW = 128 * 1024 * 1024
_MAX_SKIP = 8 * 1024 * 1024  # a read this far ahead of a body reads through the gap
_MAX_STREAMS = 4  # bodies open per reader
_IDLE_CLOSE = 5.0  # seconds before an idle body gives its connection back
_READ_STEP = 1024 * 1024  # bytes asked of a body at a time


def _policy() -> ReadAheadPolicy:
    # Built when used, from the numbers above as they are then (tests shrink them).
    return ReadAheadPolicy(first_request=_FIRST_WINDOW, max_skip=_MAX_SKIP)


class Cancellable(Protocol):
    def cancel(self) -> None: ...


# Runs a callback after a delay, cancellably (asyncio's call_later).
Schedule = Callable[[float, Callable[[], None]], Cancellable]


def call_later(delay: float, callback: Callable[[], None]) -> Cancellable:
    return asyncio.get_running_loop().call_later(delay, callback)


class _Stream:
    """One GET's body, read in order: the object's bytes [pos, end) are still to come."""

    def __init__(self, pos: int) -> None:
        self.body: Any = None  # aiobotocore's StreamingBody
        self.pos = pos
        self.end = pos
        self.window = _policy().first_request
        self.lock = asyncio.Lock()  # one read at a time: the body is read in order
        self.claims: list[int] = []  # ends of the reads queued on it
        self.idle: Cancellable | None = None
        self.used = 0  # when a read last joined it

    @property
    def next(self) -> int:
        """Where it will stand once the reads queued on it are served."""
        return max(self.pos, *self.claims) if self.claims else self.pos

    def continues_at(self, pos: int) -> bool:
        return _policy().move(self.pos, pos) is not Move.SEEK

    def drop(self) -> None:
        body, self.body = self.body, None
        if body is not None:
            body.close()  # unread: the connection is closed, not pooled


class S3Reader:
    """Streams, as rclone's chunked reader does: a GET's body stays open and serves
    the reads that follow on from where it stands, instead of one ranged GET per
    read (a round trip apiece, and some servers pay per request, moto by slicing
    the whole object). A GET asks for `_FIRST_WINDOW`, the next one of a stream
    twice as much, and so on.

    Reads arrive several at a time (the VFS reads ahead); each joins the stream it
    continues and waits its turn there. A read behind every stream, or far ahead,
    starts a new one; a few are kept, so that readers sharing this one (the
    cache's handles) do not take turns reopening a single body, and an idle body
    soon gives its connection back to the pool. Which stream a read continues,
    and the next GET's size, follow `domain.read_ahead`."""

    def __init__(
        self,
        bucket: S3Bucket,
        key: str,
        path: str,
        size: int,
        schedule: Schedule = call_later,
    ) -> None:
        self._bucket, self._key, self._path, self._size = bucket, key, path, size
        self._schedule = schedule  # how idle bodies get their close (tests: by hand)
        self._streams: list[_Stream] = []
        self._ticks = itertools.count()
        self._closed = False

    async def read(self, offset: int, size: int) -> bytes:
        if self._closed:
            raise ValueError("read on a closed file")
        if size <= 0 or offset < 0 or offset >= self._size:
            return b""
        end = min(offset + size, self._size)
        stream = self._join(offset, end)
        try:
            async with stream.lock:
                return await self._serve(stream, offset, end)
        finally:
            self._leave(stream, end)

    async def close(self) -> None:
        self._closed = True
        for stream in list(self._streams):
            self._retire(stream)

    def _join(self, offset: int, end: int) -> _Stream:
        """The stream the read at `offset` continues (a new one if none), the read
        queued on it. No await: reads join in the order they were made."""
        policy = _policy()
        near = [s for s in self._streams if policy.move(s.next, offset) is not Move.SEEK]
        if near:
            stream = max(near, key=lambda s: s.next)
        else:
            if len(self._streams) >= _MAX_STREAMS:
                # The least recently used, an idle one first.
                self._retire(min(self._streams, key=lambda s: (bool(s.claims), s.used)))
            stream = _Stream(offset)
            self._streams.append(stream)
        if stream.idle is not None:
            stream.idle.cancel()
            stream.idle = None
        stream.used = next(self._ticks)
        stream.claims.append(end)
        return stream

    def _leave(self, stream: _Stream, end: int) -> None:
        stream.claims.remove(end)
        if stream.claims:
            return
        if stream.body is None or stream not in self._streams:
            self._retire(stream)  # failed, cancelled, or retired while busy
        elif not self._closed:
            stream.idle = self._schedule(_IDLE_CLOSE, partial(self._retire, stream))

    def _retire(self, stream: _Stream) -> None:
        """Forget the stream; its body is closed now, or by the last read queued."""
        if stream in self._streams:
            self._streams.remove(stream)
        if stream.idle is not None:
            stream.idle.cancel()
            stream.idle = None
        if not stream.claims:
            stream.drop()

    async def _serve(self, stream: _Stream, offset: int, end: int) -> bytes:
        out = bytearray()
        retried = False
        while offset + len(out) < min(end, self._size):
            if self._closed:
                raise ValueError("read on a closed file")
            pos = offset + len(out)
            reading = False
            try:
                if stream.body is None or not stream.continues_at(pos) or pos >= stream.end:
                    await self._open(stream, pos)
                    continue  # the object may have turned out shorter
                reading = True
                await self._take(stream, pos - stream.pos, None)
                await self._take(stream, min(end, stream.end) - pos, out)
            except Exception as exc:
                stream.drop()
                mapped = self._bucket.error(exc, self._path)
                # A body cut short (a reset, a timeout, a server closing idle
                # connections) is opened again where it stopped, once; a failed
                # request only if it was the connection (s3fs retried it already).
                if retried or not (reading or isinstance(mapped, RemoteUnavailable)):
                    raise mapped from None
                retried = True
                logger.debug(
                    "{}: reading {} again after {}", self._bucket.label, self._path, mapped
                )
            except BaseException:
                stream.drop()  # cancelled mid-body: where it stands is unknown
                raise
        return bytes(out)

    async def _open(self, stream: _Stream, pos: int) -> None:
        if stream.body is not None:
            # Past the window: the next one is twice as large; elsewhere: a seek.
            following = stream.continues_at(pos) and pos >= stream.end
            policy = _policy()
            stream.window = policy.grown(stream.window) if following else policy.first_request
            stream.drop()
        stop = min(pos + stream.window, self._size)
        response = await self._bucket.call(
            "get_object", Key=self._key, Range=f"bytes={pos}-{stop - 1}"
        )
        stream.body = response["Body"]
        stream.pos = pos
        stream.end = pos + int(response.get("ContentLength", stop - pos))
        if stream.end < stop:
            self._size = stream.end  # the object is shorter now: reads end there

    async def _take(self, stream: _Stream, count: int, out: bytearray | None) -> None:
        """The body's next `count` bytes, added to `out` (None: dropped)."""
        while count > 0:
            chunk = await stream.body.read(min(count, _READ_STEP))
            if not chunk:  # no error, yet short of the range
                raise OSError(errno.EIO, "the object's body ended early", self._path)
            stream.pos += len(chunk)
            count -= len(chunk)
            if out is not None:
                out += chunk
