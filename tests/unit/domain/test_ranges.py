from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.ranges import RangeSet

UNIVERSE = 64
spans = st.tuples(st.integers(0, UNIVERSE), st.integers(0, UNIVERSE)).map(
    lambda t: (min(t), max(t))
)


def model_of(ops: list[tuple[str, int, int]]) -> tuple[RangeSet, set[int]]:
    rs, model = RangeSet(), set()
    for op, a, b in ops:
        if op == "add":
            rs.add(a, b)
            model |= set(range(a, b))
        else:
            rs.truncate(a)
            model = {x for x in model if x < a}
    return rs, model


ops = st.lists(
    st.one_of(
        spans.map(lambda s: ("add", s[0], s[1])),
        st.integers(0, UNIVERSE).map(lambda n: ("truncate", n, 0)),
    ),
    max_size=12,
)


@given(ops)
def test_canonical_and_matches_model(ops: list[tuple[str, int, int]]) -> None:
    rs, model = model_of(ops)
    ranges = rs.ranges()
    assert {x for s, e in ranges for x in range(s, e)} == model
    assert rs.present_bytes() == len(model)
    for (s1, e1), (s2, e2) in pairwise(ranges):
        assert s1 < e1 < s2 < e2  # sorted, non-empty, not touching
    assert all(s < e for s, e in ranges)


@given(ops, spans)
def test_covers_and_missing_match_model(
    ops: list[tuple[str, int, int]], span: tuple[int, int]
) -> None:
    rs, model = model_of(ops)
    start, end = span
    wanted = set(range(start, end))
    assert rs.covers(start, end) == wanted.issubset(model)
    gaps = rs.missing(start, end)
    assert {x for s, e in gaps for x in range(s, e)} == wanted - model
    flat = [x for gap in gaps for x in gap]
    assert flat == sorted(flat)
    assert all(s < e for s, e in gaps)
    # Gaps are maximal: neighbours of a gap inside the span are present.
    for s, e in gaps:
        assert s == start or (s - 1) in model
        assert e == end or e in model


@given(ops)
def test_json_round_trip(ops: list[tuple[str, int, int]]) -> None:
    rs, _ = model_of(ops)
    again = RangeSet.from_json(rs.to_json())
    assert again == rs
    assert again.ranges() == rs.ranges()


@given(st.lists(spans, max_size=8), st.permutations(range(8)))
def test_order_of_adds_does_not_matter(adds: list[tuple[int, int]], perm: list[int]) -> None:
    shuffled = [adds[i] for i in perm if i < len(adds)]
    assert RangeSet(adds) == RangeSet(shuffled)


def test_adjacent_ranges_coalesce() -> None:
    rs = RangeSet([(0, 10), (20, 30)])
    rs.add(10, 20)
    assert rs.ranges() == [(0, 30)]
    rs.add(30, 31)
    assert rs.ranges() == [(0, 31)]


def test_add_bridging_many() -> None:
    rs = RangeSet([(0, 2), (4, 6), (8, 10), (12, 14)])
    rs.add(1, 9)
    assert rs.ranges() == [(0, 10), (12, 14)]


def test_empty_add_is_ignored_and_empty_span_is_covered() -> None:
    rs = RangeSet([(5, 5)])
    assert rs.ranges() == []
    assert not rs
    assert rs.covers(3, 3)
    assert rs.missing(3, 3) == []


def test_truncate_splits_a_range() -> None:
    rs = RangeSet([(0, 10), (20, 30)])
    rs.truncate(25)
    assert rs.ranges() == [(0, 10), (20, 25)]
    rs.truncate(20)
    assert rs.ranges() == [(0, 10)]
    rs.truncate(0)
    assert rs.ranges() == []


def test_missing_examples() -> None:
    rs = RangeSet([(10, 20), (30, 40)])
    assert rs.missing(0, 50) == [(0, 10), (20, 30), (40, 50)]
    assert rs.missing(15, 35) == [(20, 30)]
    assert rs.missing(12, 18) == []
    assert not rs.covers(15, 35)
    assert rs.covers(30, 40)


@pytest.mark.parametrize("bad", [(-1, 3), (5, 4)])
def test_invalid_spans_raise(bad: tuple[int, int]) -> None:
    rs = RangeSet()
    with pytest.raises(ValueError):
        rs.add(*bad)
    with pytest.raises(ValueError):
        rs.covers(*bad)
    with pytest.raises(ValueError):
        rs.missing(*bad)


def test_truncate_negative_raises() -> None:
    with pytest.raises(ValueError):
        RangeSet().truncate(-1)


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"0": 1},
        [[0]],
        [[0, 1, 2]],
        [(0, 1)],
        [["0", "1"]],
        [[0.0, 1]],
        [[True, 2]],
        [[-1, 3]],
        [[3, 3]],
        [[5, 2]],
        [[0, 5], [5, 8]],  # touching: never written that way
        [[0, 5], [3, 8]],  # overlapping
        [[10, 20], [0, 5]],  # out of order
    ],
)
def test_from_json_rejects_damage(data: object) -> None:
    with pytest.raises(ValueError):
        RangeSet.from_json(data)


def test_from_json_accepts_canonical() -> None:
    assert RangeSet.from_json([[0, 5], [6, 8]]).ranges() == [(0, 5), (6, 8)]
    assert RangeSet.from_json([]) == RangeSet()


def test_equality_repr_and_copy() -> None:
    rs = RangeSet([(0, 4)])
    assert rs == RangeSet([(0, 2), (2, 4)])
    assert rs != RangeSet([(0, 3)])
    assert rs != [(0, 4)]
    assert repr(rs) == "RangeSet([(0, 4)])"
    clone = rs.copy()
    clone.add(10, 12)
    assert rs.ranges() == [(0, 4)]
