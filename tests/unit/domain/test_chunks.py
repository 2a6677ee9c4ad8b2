import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.chunks import ChunkSchedule
from domain.volume import UNLIMITED

M = 1024 * 1024


def take(schedule: ChunkSchedule, size: int, n: int) -> list[tuple[int, int]]:
    out = []
    for _ in range(n):
        chunk = schedule.next_chunk(size)
        if chunk is None:
            break
        out.append(chunk)
    return out


def as_spans(chunks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(o // M, (o + n) // M) for o, n in chunks]


def test_doc_example_limit_zero_is_fixed_chunks() -> None:
    s = ChunkSchedule(100 * M, 0)
    assert as_spans(take(s, 10_000 * M, 4)) == [(0, 100), (100, 200), (200, 300), (300, 400)]


def test_doc_example_limit_500m() -> None:
    s = ChunkSchedule(100 * M, 500 * M)
    assert as_spans(take(s, 10_000 * M, 5)) == [
        (0, 100),
        (100, 300),
        (300, 700),
        (700, 1200),
        (1200, 1700),
    ]


def test_limit_off_doubles_forever() -> None:
    s = ChunkSchedule(M, UNLIMITED)
    assert [n // M for _, n in take(s, 1 << 50, 12)] == [2**i for i in range(12)]


def test_limit_below_chunk_size_means_fixed_chunks() -> None:
    s = ChunkSchedule(10, 4)
    assert take(s, 35, 10) == [(0, 10), (10, 10), (20, 10), (30, 5)]


@pytest.mark.parametrize("chunk_size", [0, UNLIMITED])
def test_disabled_chunking_is_one_open_ended_request(chunk_size: int) -> None:
    s = ChunkSchedule(chunk_size, 500, start=7)
    assert s.disabled
    assert s.next_chunk(100) == (7, 93)
    assert s.next_chunk(100) is None
    s.restart(50)
    assert s.next_chunk(100) == (50, 50)


def test_restart_starts_over_from_chunk_size() -> None:
    s = ChunkSchedule(10, UNLIMITED)
    assert take(s, 1000, 3) == [(0, 10), (10, 20), (30, 40)]
    s.restart(500)
    assert take(s, 1000, 2) == [(500, 10), (510, 20)]


def test_eof_and_start_past_end() -> None:
    assert ChunkSchedule(10, UNLIMITED, start=100).next_chunk(100) is None
    assert ChunkSchedule(10, UNLIMITED).next_chunk(0) is None


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        ChunkSchedule(10, 20, start=-1)
    with pytest.raises(ValueError):
        ChunkSchedule(10, 20).restart(-5)
    with pytest.raises(ValueError):
        ChunkSchedule(10, 20).next_chunk(-1)


@given(
    chunk_size=st.one_of(st.just(0), st.just(UNLIMITED), st.integers(1, 64)),
    limit=st.one_of(st.just(UNLIMITED), st.integers(0, 300)),
    start=st.integers(0, 3000),
    size=st.integers(0, 3000),
)
def test_chunks_tile_the_rest_of_the_file(
    chunk_size: int, limit: int, start: int, size: int
) -> None:
    s = ChunkSchedule(chunk_size, limit, start=start)
    chunks = take(s, size, 10_000)
    assert s.next_chunk(size) is None
    pos = start
    for offset, length in chunks:
        assert offset == pos  # no gap, no overlap
        assert length > 0
        pos += length
    assert pos == max(start, size)
    if chunk_size <= 0:
        assert len(chunks) == (1 if start < size else 0)
        return
    cap = chunk_size if limit != UNLIMITED and limit < chunk_size else limit
    expected = chunk_size
    for i, (_, length) in enumerate(chunks):
        if i < len(chunks) - 1:
            assert length == expected
        else:
            assert length <= expected  # only the last one is clipped
        expected = expected * 2 if cap == UNLIMITED else min(expected * 2, cap)
