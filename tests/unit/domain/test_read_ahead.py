import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.read_ahead import Move, ReadAheadPolicy, ReadAheadState
from domain.volume import UNLIMITED

K = 1024
M = 1024 * K


def reads(policy: ReadAheadPolicy, *spans: tuple[int, int]) -> ReadAheadState:
    state = policy.start()
    for offset, size in spans:
        state = policy.read(state, offset, size)
    return state


# ----- move -------------------------------------------------------------------------


def test_a_read_where_the_last_ended_is_sequential() -> None:
    assert ReadAheadPolicy().move(10, 10) is Move.SEQUENTIAL


@pytest.mark.parametrize("offset", [9, 11, 0, 10 + M])
def test_without_skip_any_other_offset_is_a_seek(offset: int) -> None:
    assert ReadAheadPolicy().move(10, offset) is Move.SEEK


@pytest.mark.parametrize(("offset", "move"), [(11, Move.SKIP), (18, Move.SKIP), (19, Move.SEEK)])
def test_a_read_at_most_max_skip_ahead_is_a_skip(offset: int, move: Move) -> None:
    assert ReadAheadPolicy(max_skip=8).move(10, offset) is move


def test_a_read_behind_is_a_seek_whatever_the_skip() -> None:
    assert ReadAheadPolicy(max_skip=8 * M).move(10, 9) is Move.SEEK


@pytest.mark.parametrize("offset", [0, 9, 11, 10 + M])
def test_a_read_into_bytes_in_flight_is_a_skip_ahead_or_behind(offset: int) -> None:
    assert ReadAheadPolicy().move(10, offset, in_flight=True) is Move.SKIP


def test_in_flight_does_not_hide_a_sequential_read() -> None:
    assert ReadAheadPolicy().move(10, 10, in_flight=True) is Move.SEQUENTIAL


# ----- read: the state a read leads to ----------------------------------------------


def test_the_start_expects_offset_zero_with_the_first_request() -> None:
    assert ReadAheadPolicy(first_request=512 * K).start() == ReadAheadState(
        expected=0, streak=0, request=512 * K, move=Move.SEQUENTIAL
    )


def test_sequential_reads_grow_the_streak() -> None:
    state = reads(ReadAheadPolicy(), (0, 100), (100, 50))
    assert (state.expected, state.streak, state.move) == (150, 150, Move.SEQUENTIAL)


def test_a_skip_keeps_the_streak_and_moves_on() -> None:
    policy = ReadAheadPolicy(max_skip=100)
    state = reads(policy, (0, 100), (150, 10))
    assert (state.expected, state.streak, state.move) == (160, 100, Move.SKIP)


def test_a_seek_starts_over_without_counting_the_read() -> None:
    policy = ReadAheadPolicy(first_request=4)
    state = policy.requested(policy.requested(reads(policy, (0, 100))))
    assert state.request == 16
    state = policy.read(state, 5000, 10)
    assert state == ReadAheadState(expected=5010, streak=0, request=4, move=Move.SEEK)


def test_the_read_after_a_seek_counts_again() -> None:
    state = reads(ReadAheadPolicy(), (0, 10), (500, 10), (510, 10))
    assert (state.streak, state.move) == (10, Move.SEQUENTIAL)


# ----- requests ---------------------------------------------------------------------


def test_requests_double_up_to_the_maximum() -> None:
    policy = ReadAheadPolicy(first_request=512 * K, max_request=4 * M)
    sizes = []
    state = policy.start()
    for _ in range(6):
        sizes.append(state.request)
        state = policy.requested(state)
    assert sizes == [512 * K, M, 2 * M, 4 * M, 4 * M, 4 * M]


def test_unlimited_requests_double_without_end() -> None:
    policy = ReadAheadPolicy(first_request=128 * M)
    assert policy.grown(policy.grown(128 * M)) == 512 * M


def test_a_request_does_not_move_the_reader() -> None:
    policy = ReadAheadPolicy(first_request=1)
    state = reads(policy, (0, 10))
    assert policy.requested(state) == ReadAheadState(
        expected=10, streak=10, request=2, move=Move.SEQUENTIAL
    )


# ----- ahead: how far to fetch ------------------------------------------------------


def test_ahead_is_the_larger_of_the_next_request_and_the_streak() -> None:
    policy = ReadAheadPolicy(first_request=512 * K, max_request=4 * M, max_ahead=16 * M)
    assert policy.ahead(reads(policy, (0, 128 * K))) == 512 * K
    assert policy.ahead(reads(policy, (0, 3 * M))) == 3 * M


def test_ahead_stays_within_max_ahead() -> None:
    policy = ReadAheadPolicy(first_request=512 * K, max_ahead=4 * M)
    assert policy.ahead(reads(policy, (0, 64 * M))) == 4 * M


def test_unlimited_ahead_follows_the_streak() -> None:
    policy = ReadAheadPolicy()
    assert policy.ahead(reads(policy, (0, 64 * M))) == 64 * M


def test_proven_only_fetches_nothing_for_a_first_read() -> None:
    policy = ReadAheadPolicy(max_ahead=M, streak_factor=2, proven_only=True)
    assert policy.ahead(reads(policy, (0, 128 * K)), 128 * K) == 0


def test_proven_only_fetches_twice_the_streak_once_reads_follow() -> None:
    policy = ReadAheadPolicy(max_ahead=M, streak_factor=2, proven_only=True)
    state = reads(policy, (0, 128 * K), (128 * K, 128 * K))
    assert policy.ahead(state, 128 * K) == 512 * K
    state = reads(policy, *[(i * 128 * K, 128 * K) for i in range(3)])
    assert policy.ahead(state, 128 * K) == 768 * K
    state = reads(policy, *[(i * 128 * K, 128 * K) for i in range(5)])
    assert policy.ahead(state, 128 * K) == M  # not 1280 KiB: within max_ahead


def test_proven_only_stops_fetching_after_a_seek() -> None:
    policy = ReadAheadPolicy(max_ahead=M, streak_factor=2, proven_only=True)
    state = reads(policy, (0, 128 * K), (128 * K, 128 * K), (10 * M, 128 * K))
    assert policy.ahead(state, 128 * K) == 0


def test_a_zero_max_ahead_fetches_nothing() -> None:
    policy = ReadAheadPolicy(max_ahead=0, streak_factor=2, proven_only=True)
    state = reads(policy, (0, 128 * K), (128 * K, 128 * K))
    assert policy.ahead(state, 128 * K) == 0


# ----- properties -------------------------------------------------------------------

span = st.tuples(st.integers(0, 1 << 40), st.integers(1, 1 << 24))


@given(
    st.lists(span, max_size=20),
    st.integers(0, 1 << 24),
    st.integers(0, 1 << 30),
)
def test_the_state_follows_the_reads(
    spans: list[tuple[int, int]], max_skip: int, max_ahead: int
) -> None:
    policy = ReadAheadPolicy(first_request=K, max_request=M, max_skip=max_skip, max_ahead=max_ahead)
    state = policy.start()
    for offset, size in spans:
        before = state
        state = policy.read(state, offset, size)
        assert state.expected == offset + size
        if state.move is Move.SEQUENTIAL:
            assert state.streak == before.streak + size
        elif state.move is Move.SKIP:
            assert before.expected < offset <= before.expected + max_skip
            assert state.streak == before.streak
        else:
            assert (state.streak, state.request) == (0, K)
        assert 0 <= policy.ahead(state, size) <= max_ahead


@given(st.integers(1, 1 << 30), st.integers(1, 1 << 30))
def test_grown_doubles_within_the_maximum(request: int, maximum: int) -> None:
    grown = ReadAheadPolicy(max_request=maximum).grown(request)
    assert grown == min(2 * request, maximum)
    assert ReadAheadPolicy(max_request=UNLIMITED).grown(request) == 2 * request
