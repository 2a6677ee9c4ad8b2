"""When a reader is sequential, and how far ahead of it to fetch.

Every streaming reader asks the same questions of each read: does it follow on
from the previous one, and how much should the remote be asked for next. The
answer (`Move`) is one of:

- SEQUENTIAL: the read starts where the previous one ended;
- SKIP: it starts a little further ahead (at most `max_skip` bytes), or in bytes
  the reader already has on their way: still following, reading through the gap;
- SEEK: anywhere else; read-ahead starts over, small.

The readers differ only in their numbers, kept here as the policy's parameters:
the first request after a seek and how far requests double (`first_request`,
`max_request`), how far ahead a read may skip (`max_skip`), and how the
read-ahead distance follows the sequential streak (`max_ahead`, `streak_factor`,
`proven_only`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from domain.volume import UNLIMITED


class Move(Enum):
    SEQUENTIAL = "sequential"
    SKIP = "skip"
    SEEK = "seek"


@dataclass(frozen=True, slots=True)
class ReadAheadState:
    """Where one reader stands."""

    expected: int = 0  # where a sequential read starts next
    streak: int = 0  # bytes read in sequence since the last seek
    request: int = 0  # the size of the next request to the remote
    move: Move = Move.SEQUENTIAL  # how the last read moved


@dataclass(frozen=True, slots=True)
class ReadAheadPolicy:
    first_request: int = 0  # the first request after a seek (0: requests are not sized here)
    max_request: int = UNLIMITED  # requests double up to this (UNLIMITED: without end)
    max_skip: int = 0  # a read this far ahead of the expected one still follows
    max_ahead: int = UNLIMITED  # never read further ahead than this
    streak_factor: int = 1  # read ahead this many times the sequential streak
    # No read-ahead until the streak is longer than the read itself, that is
    # until a read has followed another: a single read proves nothing.
    proven_only: bool = False

    def start(self) -> ReadAheadState:
        return ReadAheadState(request=self.first_request)

    def move(self, expected: int, offset: int, *, in_flight: bool = False) -> Move:
        """How a read at `offset` moves from `expected`; `in_flight`: its bytes are
        already being fetched (reads that arrive out of order are not seeks)."""
        if offset == expected:
            return Move.SEQUENTIAL
        if in_flight or expected < offset <= expected + self.max_skip:
            return Move.SKIP
        return Move.SEEK

    def read(
        self, state: ReadAheadState, offset: int, size: int, *, in_flight: bool = False
    ) -> ReadAheadState:
        """The state after a read of `size` bytes at `offset`."""
        move = self.move(state.expected, offset, in_flight=in_flight)
        if move is Move.SEQUENTIAL:
            return replace(state, expected=offset + size, streak=state.streak + size, move=move)
        if move is Move.SKIP:
            return replace(state, expected=offset + size, move=move)
        return ReadAheadState(expected=offset + size, request=self.first_request, move=move)

    def grown(self, request: int) -> int:
        """The size of the request after one of `request` bytes, the reader still following."""
        doubled = request * 2
        return doubled if self.max_request == UNLIMITED else min(doubled, self.max_request)

    def requested(self, state: ReadAheadState) -> ReadAheadState:
        """The state after a request of `state.request` bytes was made."""
        return replace(state, request=self.grown(state.request))

    def ahead(self, state: ReadAheadState, size: int = 0) -> int:
        """How far ahead of the reader to fetch, after a read of `size` bytes (only
        `proven_only` needs it) led to `state`: the window opens up with the streak,
        so random reads do not pull megabytes they will never use."""
        if self.proven_only and state.streak <= size:
            return 0
        distance = max(state.request, self.streak_factor * state.streak)
        return distance if self.max_ahead == UNLIMITED else min(distance, self.max_ahead)
