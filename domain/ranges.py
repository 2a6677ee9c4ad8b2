"""Which byte ranges of a sparse cache file hold downloaded data.

Ranges are half-open, [start, end). The set is kept canonical: sorted, with no
empty, overlapping or touching ranges, so two sets holding the same bytes are
equal and the JSON form is unique (which is what lets `from_json` reject a
damaged metadata file instead of trusting it).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator


def _check_span(start: int, end: int) -> None:
    if start < 0 or end < start:
        raise ValueError(f"invalid byte range [{start}, {end})")


class RangeSet:
    __slots__ = ("_ends", "_starts")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        # Two parallel sorted lists: bisect works on plain ints, no tuple keys.
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in ranges:
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        _check_span(start, end)
        if start == end:
            return
        # Every range that overlaps or touches [start, end) merges into it:
        # those with range.end >= start and range.start <= end.
        lo = bisect_left(self._ends, start)
        hi = bisect_right(self._starts, end)
        if lo < hi:
            start = min(start, self._starts[lo])
            end = max(end, self._ends[hi - 1])
        self._starts[lo:hi] = [start]
        self._ends[lo:hi] = [end]

    def truncate(self, size: int) -> None:
        """Forget every byte at or past `size` (the file was shortened)."""
        if size < 0:
            raise ValueError(f"invalid size {size}")
        i = bisect_left(self._starts, size)  # ranges from i on start at or past size
        del self._starts[i:]
        del self._ends[i:]
        if self._ends and self._ends[-1] > size:
            self._ends[-1] = size

    def covers(self, start: int, end: int) -> bool:
        """Whether every byte of [start, end) is present; an empty span always is."""
        _check_span(start, end)
        if start == end:
            return True
        i = bisect_right(self._starts, start) - 1
        return i >= 0 and self._ends[i] >= end

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        """The gaps inside [start, end), in order: what still has to be downloaded."""
        _check_span(start, end)
        gaps: list[tuple[int, int]] = []
        pos = start
        i = bisect_right(self._ends, start)  # first range ending past start
        while pos < end and i < len(self._starts):
            s, e = self._starts[i], self._ends[i]
            if s >= end:
                break
            if s > pos:
                gaps.append((pos, s))
            pos = max(pos, e)
            i += 1
        if pos < end:
            gaps.append((pos, end))
        return gaps

    def present_bytes(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends, strict=True))

    def copy(self) -> RangeSet:
        other = RangeSet()
        other._starts = list(self._starts)
        other._ends = list(self._ends)
        return other

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.ranges())

    def __bool__(self) -> bool:
        return bool(self._starts)

    def to_json(self) -> list[list[int]]:
        return [[s, e] for s, e in zip(self._starts, self._ends, strict=True)]

    @classmethod
    def from_json(cls, data: object) -> RangeSet:
        """Parse what `to_json` wrote. Anything else, including a list that is not
        in canonical order, raises ValueError: the metadata file is damaged."""
        if not isinstance(data, list):
            raise ValueError(f"byte ranges: expected a list, got {type(data).__name__}")
        result = cls()
        prev_end = -1
        for item in data:
            if not (
                isinstance(item, list)
                and len(item) == 2
                # bool is an int subclass; true/false in the file is damage, not 1/0.
                and all(isinstance(x, int) and not isinstance(x, bool) for x in item)
            ):
                raise ValueError(f"byte ranges: malformed entry {item!r}")
            start, end = item
            if start < 0 or end <= start:
                raise ValueError(f"byte ranges: invalid range {item!r}")
            if start <= prev_end:
                raise ValueError(
                    f"byte ranges: {item!r} overlaps, touches or precedes the previous range"
                )
            result._starts.append(start)
            result._ends.append(end)
            prev_end = end
        return result

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RangeSet):
            return NotImplemented
        return self._starts == other._starts and self._ends == other._ends

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"RangeSet({self.ranges()!r})"
