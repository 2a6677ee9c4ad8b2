"""The byte ranges a chunked reader asks the remote for.

rclone's rule (fs/chunkedreader): the first request asks for `chunk_size`
bytes and each next one for twice the previous, capped at `limit`. A limit
below `chunk_size` (the doc's `--vfs-read-chunk-size-limit 0` among them) is
raised to `chunk_size`, so chunks stay fixed; only `UNLIMITED` (-1, "off")
lets them grow without end. A `chunk_size` of 0 or below disables chunking:
one request from the offset to the end of the file. A seek starts over.
"""

from __future__ import annotations

from domain.volume import UNLIMITED


class ChunkSchedule:
    __slots__ = ("_chunk_size", "_limit", "_next_len", "_offset")

    def __init__(self, chunk_size: int, limit: int, start: int = 0) -> None:
        if start < 0:
            raise ValueError(f"invalid start offset {start}")
        self._chunk_size = chunk_size if chunk_size > 0 else 0  # 0: chunking disabled
        if limit != UNLIMITED and limit < self._chunk_size:
            limit = self._chunk_size
        self._limit = limit
        self._offset = start
        self._next_len = self._chunk_size

    @property
    def disabled(self) -> bool:
        return self._chunk_size == 0

    @property
    def offset(self) -> int:
        """Where the next request starts."""
        return self._offset

    @property
    def next_length(self) -> int:
        """The unclipped length of the next request (0 when chunking is disabled)."""
        return self._next_len

    def next_chunk(self, file_size: int) -> tuple[int, int] | None:
        """(offset, length) of the next request, clipped to the file; None at EOF."""
        if file_size < 0:
            raise ValueError(f"invalid file size {file_size}")
        offset = self._offset
        if offset >= file_size:
            return None
        if self.disabled:
            length = file_size - offset
        else:
            length = min(self._next_len, file_size - offset)
            grown = self._next_len * 2
            self._next_len = grown if self._limit == UNLIMITED else min(grown, self._limit)
        self._offset = offset + length
        return offset, length

    def restart(self, offset: int) -> None:
        """A seek: the next request starts at `offset` with the initial chunk size."""
        if offset < 0:
            raise ValueError(f"invalid offset {offset}")
        self._offset = offset
        self._next_len = self._chunk_size

    def __repr__(self) -> str:
        return (
            f"ChunkSchedule(chunk_size={self._chunk_size}, limit={self._limit}, "
            f"offset={self._offset}, next_length={self._next_len})"
        )
