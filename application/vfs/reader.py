"""Streaming reads with read-ahead, for uncached read handles.

The kernel asks for at most 128 KiB at a time, and over SFTP the round trip costs
far more than the transfer, so the remote is asked for large pieces instead
(`first_piece` after a seek, doubling up to `max_piece`), and while one piece is
being consumed the next ones are already in flight, up to `window` bytes ahead.
The window only opens up as the reader proves to be sequential, so random reads
do not pull megabytes they will never use.
(What counts as sequential, and how pieces and window grow, is
`domain.read_ahead`'s rule, shared with the cache and the S3 reader.)

Pieces never cross the boundaries of `--vfs-read-chunk-size` chunks
(`domain.chunks.ChunkSchedule`: doubling up to the limit, starting over at a
seek), so the remote is never asked past the chunk the reader is in. A read that
arrives ahead of the one the stream expects waits up to `--vfs-read-wait` for
it before counting as a seek: the kernel delivers concurrent reads out of order.

With `--vfs-read-chunk-streams N` (N > 0) the pieces are instead whole chunks of
`--vfs-read-chunk-size` (at most MAX_STREAM_PIECE: a piece is held in memory),
without doubling, and up to N of them are fetched at once, each through a
remote reader opened for it and closed after it, so that N ranged reads run in
parallel for one sequential reader, as rclone's parallel chunked reader does.
With N = 1 the chunks follow each other on one reader, which streams them.
How many are in flight still follows the sequential streak.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Awaitable, Callable

from loguru import logger

from application.ports import RemoteReader
from domain.chunks import ChunkSchedule
from domain.read_ahead import Move, ReadAheadPolicy, ReadAheadState
from domain.volume import UNLIMITED

FIRST_PIECE = 512 * 1024
MAX_PIECE = 4 * 1024 * 1024
MAX_STREAM_PIECE = 16 * 1024 * 1024


class _Piece:
    def __init__(self, start: int, size: int, task: asyncio.Task[bytes]) -> None:
        self.start = start
        self.size = size
        self.task = task

    @property
    def end(self) -> int:
        return self.start + self.size


class ReadAhead:
    """Serves `read(offset, size)` from pieces fetched ahead of the reader."""

    def __init__(
        self,
        open_reader: Callable[[], Awaitable[RemoteReader]],
        size_hint: int,
        *,
        window: int,
        first_piece: int = FIRST_PIECE,
        max_piece: int = MAX_PIECE,
        chunk_size: int = 0,
        chunk_limit: int = UNLIMITED,
        read_wait: float = 0.0,
        no_seek: bool = False,
        name: str = "",
        streams: int = 0,
    ) -> None:
        self._open_reader = open_reader
        # --vfs-read-chunk-streams: fixed pieces, each through a reader of its own.
        self._streams = streams if streams > 0 and chunk_size > 0 else 0
        if self._streams:
            first_piece = max_piece = min(chunk_size, MAX_STREAM_PIECE)
            window = self._streams * max_piece
            chunk_size = 0  # every piece is a chunk: no schedule to follow
        self._stream_slots = asyncio.Semaphore(max(self._streams, 1))
        self._reader: RemoteReader | None = None
        self._open_lock = asyncio.Lock()
        self._size_hint = size_hint
        self._eof: int | None = None  # exact end, once a short piece has shown it
        # Pieces double from the first after a seek; the reader is kept the larger
        # of the next piece and its streak ahead, within the window. A read into
        # pieces in flight is no seek: the kernel's reads arrive out of order.
        self._policy = ReadAheadPolicy(
            first_request=min(first_piece, max_piece),
            max_request=max_piece,
            max_ahead=max(window, max_piece),
        )
        self._piece = max_piece
        self._position = self._policy.start()
        self._no_seek = no_seek
        self._name = name
        self._pieces: list[_Piece] = []
        self._closed = False
        self._chunks = ChunkSchedule(chunk_size, chunk_limit)
        self._chunk_span = (0, 0)  # the chunk pieces are being cut from
        self._read_wait = read_wait
        self._moved = asyncio.Condition()  # notified when the expected offset changes

    async def _wait_in_sequence(self, offset: int) -> None:
        """Give the read the stream expects `read_wait` to arrive first."""
        async with self._moved:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._moved.wait_for(
                        lambda: (
                            self._covering(offset) is not None or offset == self._position.expected
                        )
                    ),
                    self._read_wait,
                )

    async def _advance(self, position: ReadAheadState) -> None:
        self._position = position
        if self._read_wait > 0:
            async with self._moved:
                self._moved.notify_all()

    async def read(self, offset: int, size: int) -> bytes:
        if self._closed:
            raise OSError(errno.EBADF, "read on a closed handle")
        if size <= 0:
            return b""
        if self._eof is not None and offset >= self._eof:
            return b""
        reader = await self._ensure_reader()
        if (
            self._covering(offset) is None
            and offset > self._position.expected
            and self._read_wait > 0
            and not self._no_seek
        ):
            await self._wait_in_sequence(offset)
        position = self._policy.read(
            self._position, offset, size, in_flight=self._covering(offset) is not None
        )
        if position.move is Move.SEEK:
            if self._no_seek:
                logger.error(
                    "{}: can't seek with --no-seek (asked for {}, at {})",
                    self._name,
                    offset,
                    self._position.expected,
                )
                raise OSError(errno.ESPIPE, "seek refused (no-seek)")
            self._seek(offset)
        await self._advance(position)
        self._drop_behind(offset)
        self._schedule(reader, offset)
        out = bytearray()
        pos, end = offset, offset + size
        while pos < end:
            if self._eof is not None and pos >= self._eof:
                break
            piece = self._covering(pos)
            if piece is None:
                # Past the pieces in flight (a read larger than the window): ask again.
                self._schedule(reader, pos, force_from=pos)
                piece = self._covering(pos)
                assert piece is not None
            try:
                data = await piece.task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                mine = current is not None and current.cancelling() > 0
                if not mine and piece.task.cancelled() and not self._closed:
                    # A concurrent seek dropped this piece; fetch it again.
                    self._schedule(reader, pos, force_from=pos)
                    continue
                raise
            except BaseException:
                self._forget(piece)
                raise
            if len(data) < piece.size:
                self._eof = piece.start + len(data)
            chunk = data[pos - piece.start : end - piece.start]
            if not chunk:
                break
            out += chunk
            pos += len(chunk)
        return bytes(out)

    async def close(self) -> None:
        self._closed = True
        await self._cancel_all()
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.close()

    async def _stream_read(self, start: int, size: int) -> bytes:
        """One chunk through a remote reader of its own, closed once the chunk is
        in: a reader kept for strided chunks would hold what it opened for the
        chunks between (S3 keeps a GET's body per position, and the connection
        pool runs dry), where a ranged read per chunk is what rclone does."""
        async with self._stream_slots:
            if self._closed:
                raise OSError(errno.EBADF, "read on a closed handle")
            reader = await self._open_reader()
            try:
                return await reader.read(start, size)
            finally:
                await reader.close()

    async def _ensure_reader(self) -> RemoteReader | None:
        if self._streams > 1:
            return None  # each chunk opens its own
        if self._reader is None:
            async with self._open_lock:
                if self._reader is None:
                    self._reader = await self._open_reader()
        return self._reader

    def _covering(self, pos: int) -> _Piece | None:
        for piece in self._pieces:
            if piece.start <= pos < piece.end:
                return piece
        return None

    def _seek(self, offset: int) -> None:
        for piece in self._pieces:
            piece.task.cancel()
        self._pieces = []
        self._chunks.restart(offset)
        self._chunk_span = (offset, offset)

    def _drop_behind(self, offset: int) -> None:
        # Keep the piece before the current one: the kernel's reads arrive slightly
        # out of order, and a late one should not count as a seek.
        current = next((i for i, p in enumerate(self._pieces) if p.start <= offset < p.end), None)
        if current is None or current < 2:
            return
        for piece in self._pieces[: current - 1]:
            piece.task.cancel()
        del self._pieces[: current - 1]

    def _limit(self) -> int:
        if self._eof is not None:
            return self._eof
        # The size is only a hint (the remote may have grown): past it, ask one
        # piece at a time, and a short answer then tells the real end.
        return self._size_hint

    def _schedule(
        self, reader: RemoteReader | None, offset: int, force_from: int | None = None
    ) -> None:
        if force_from is not None:
            self._pieces = [p for p in self._pieces if p.end <= force_from or p.start > force_from]
            self._add(reader, force_from)
        elif not self._pieces:
            self._add(reader, offset)
        ahead = self._policy.ahead(self._position)
        target = min(offset + ahead, max(self._limit(), offset + 1))
        while self._pieces[-1].end < target:
            self._add(reader, self._pieces[-1].end)

    def _piece_size(self, start: int) -> int:
        size = self._position.request
        self._position = self._policy.requested(self._position)
        if self._chunks.disabled:
            return size
        chunk_start, chunk_end = self._chunk_span
        if not chunk_start <= start < chunk_end:
            if start != self._chunks.offset:
                self._chunks.restart(start)
            # Unclipped: the file size is only a hint, the remote may have grown.
            chunk = self._chunks.next_chunk(start + self._chunks.next_length)
            assert chunk is not None
            chunk_start, chunk_end = chunk[0], chunk[0] + chunk[1]
            self._chunk_span = (chunk_start, chunk_end)
        return min(size, chunk_end - start)

    def _add(self, reader: RemoteReader | None, start: int) -> None:
        size = self._piece_size(start)
        if reader is None:
            fetch = self._stream_read(start, size)
        else:
            fetch = reader.read(start, size)
        task = asyncio.get_running_loop().create_task(fetch)
        task.add_done_callback(_retrieve)
        self._pieces.append(_Piece(start, size, task))
        self._pieces.sort(key=lambda p: p.start)

    def _forget(self, piece: _Piece) -> None:
        with contextlib.suppress(ValueError):
            self._pieces.remove(piece)

    async def _cancel_all(self) -> None:
        tasks = [p.task for p in self._pieces]
        self._pieces = []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _retrieve(task: asyncio.Task[bytes]) -> None:
    # Pieces dropped by a seek are never awaited; mark their errors as seen.
    if not task.cancelled():
        task.exception()
