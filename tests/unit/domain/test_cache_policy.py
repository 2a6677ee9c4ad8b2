import errno
import os
from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.vfs.opening import open_request
from domain.cache_policy import (
    CacheItemUsage,
    OpenPlan,
    OpenRefused,
    OpenRequest,
    can_seek,
    choose_evictions,
    plan_open,
    upload_retry_delay,
)
from domain.errors import CloudvolError
from domain.volume import UNLIMITED, CacheMode

OFF, MINIMAL, WRITES, FULL = CacheMode.OFF, CacheMode.MINIMAL, CacheMode.WRITES, CacheMode.FULL
RANK = {OFF: 0, MINIMAL: 1, WRITES: 2, FULL: 3}


def request(flags: int, exists: bool = True) -> OpenRequest:
    return open_request(flags, exists=exists)


def refused(mode: CacheMode, req: OpenRequest, **kw: bool) -> int:
    with pytest.raises(OpenRefused) as info:
        plan_open(mode, req, **kw)
    return info.value.errno


ALL_FLAGS = [
    access | extra
    for access in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR, os.O_ACCMODE)
    for extra in (sum(bits) for bits in product((0, os.O_TRUNC), (0, os.O_APPEND), (0, os.O_CREAT)))
]


# --- every mode, against rclone's documented rules ---------------------------------

# The "--vfs-cache-mode" sections of rclone's serve docker page
# (tests/data/rclone_serve_docker.md) say which opens go through the cache:
#   off:     none. Can't be opened for both read AND write; files opened for write
#            can't be seeked; O_APPEND and O_TRUNC are ignored.
#   minimal: files opened for read AND write; write-only ones still can't be
#            seeked and ignore O_APPEND.
#   writes:  write-only and read/write files; read-only ones read the remote.
#   full:    all reads and writes, supporting all normal file system operations.
# `documented_open` writes that table down; where domain/cache_policy.py follows
# rclone's code instead (its module docstring lists why), the test says so below.


def documented_open(mode: CacheMode, flags: int, exists: bool, read_only: bool) -> str | OpenPlan:
    """The plan the page implies, or the name of the errno the open fails with."""
    access = flags & os.O_ACCMODE
    if access == os.O_ACCMODE:
        return "EPERM"  # no such access mode: POSIX leaves it undefined
    if access == os.O_RDONLY and flags & os.O_TRUNC:
        # The page: opened write-only in mode off. Code: refused in every mode.
        return "EINVAL"
    read = access in (os.O_RDONLY, os.O_RDWR)
    write = access in (os.O_WRONLY, os.O_RDWR)
    creates = bool(flags & os.O_CREAT) and not exists
    append = bool(flags & os.O_APPEND)
    # Code, not page: O_CREAT counts as a write even on an existing file (the page
    # speaks of access modes only), and O_APPEND needs the existing data, so
    # minimal caches a write-only append.
    write_intent = write or bool(flags & os.O_CREAT)
    cached = {
        OFF: False,
        MINIMAL: (read and write_intent) or (write and append),
        WRITES: write_intent,
        FULL: True,
    }[mode]
    # A streamed open that may write is a write handle, so --read-only refuses it.
    if read_only and (write or creates or (write_intent and not cached)):
        return "EROFS"  # --read-only: "Only allow read-only access"
    if cached:
        return OpenPlan(
            cached=True,
            read=read,
            write=write,
            # The file starts empty with O_TRUNC, or when the open creates it.
            # (The page says write-only opens in off and minimal truncate anyway;
            # code: the handle refuses the first write unless the file is empty.)
            truncate=write and (bool(flags & os.O_TRUNC) or creates),
            append=write and append,
        )
    if write_intent:
        # Not both read and write, and O_APPEND ignored: a streamed upload.
        return OpenPlan(
            cached=False,
            read=False,
            write=True,
            truncate=bool(flags & os.O_TRUNC) or creates,
            append=False,
        )
    return OpenPlan(cached=False, read=True, write=False, truncate=False, append=False)


@pytest.mark.parametrize("mode", [OFF, MINIMAL, WRITES, FULL])
@pytest.mark.parametrize(
    ("flags", "exists"),
    # A missing file opened without O_CREAT fails before any cache decision.
    [
        (flags, exists)
        for flags in ALL_FLAGS
        for exists in (True, False)
        if exists or flags & os.O_CREAT
    ],
)
@pytest.mark.parametrize("read_only", [False, True])
def test_open_follows_the_documented_cache_modes(
    mode: CacheMode, flags: int, read_only: bool, exists: bool
) -> None:
    want = documented_open(mode, flags, exists, read_only)
    req = request(flags, exists)
    if isinstance(want, str):
        assert refused(mode, req, read_only=read_only) == getattr(errno, want)
        return
    plan = plan_open(mode, req, read_only=read_only)
    assert plan == want
    # Streamed writes can't seek; streamed reads can unless --no-seek; a cache
    # file always can.
    assert can_seek(mode, plan, no_seek=False) == (plan.cached or not plan.write)
    assert can_seek(mode, plan, no_seek=True) == plan.cached


def test_mode_off_never_caches_even_a_file_with_a_cache_item() -> None:
    for flags in ALL_FLAGS:
        if (
            flags & os.O_ACCMODE != os.O_ACCMODE
            and flags & (os.O_ACCMODE | os.O_TRUNC) != os.O_TRUNC
        ):
            assert not plan_open(OFF, request(flags), in_cache=True).cached


# --- the other modes, against rclone's File.Open switch ---------------------------


def rclone_cached(mode: CacheMode, flags: int, in_cache: bool) -> bool:
    access = flags & os.O_ACCMODE
    read = access in (os.O_RDONLY, os.O_RDWR) or bool(flags & os.O_APPEND)
    write = access in (os.O_WRONLY, os.O_RDWR) or bool(flags & (os.O_TRUNC | os.O_CREAT))
    if RANK[mode] >= 1 and in_cache:
        return True
    if read and write:
        return RANK[mode] >= 1
    if write:
        return RANK[mode] >= 2
    return RANK[mode] >= 3


@given(
    mode=st.sampled_from([MINIMAL, WRITES, FULL]),
    flags=st.sampled_from(ALL_FLAGS),
    exists=st.booleans(),
    in_cache=st.booleans(),
)
def test_cached_or_not_follows_rclone(
    mode: CacheMode, flags: int, exists: bool, in_cache: bool
) -> None:
    access = flags & os.O_ACCMODE
    req = request(flags, exists)
    if access == os.O_ACCMODE:
        assert refused(mode, req) == errno.EPERM
        return
    if access == os.O_RDONLY and flags & os.O_TRUNC:
        assert refused(mode, req) == errno.EINVAL
        return
    plan = plan_open(mode, req, in_cache=in_cache)
    assert plan.cached == rclone_cached(mode, flags, in_cache)
    if plan.cached:
        # A cache-file handle reads/writes as its access mode says.
        assert plan.read == (access != os.O_WRONLY)
        assert plan.write == (access != os.O_RDONLY)
        assert plan.append == (bool(flags & os.O_APPEND) and access != os.O_RDONLY)
        assert plan.truncate == (
            access != os.O_RDONLY
            and (bool(flags & os.O_TRUNC) or (bool(flags & os.O_CREAT) and not exists))
        )
        assert can_seek(mode, plan, no_seek=True)


def test_minimal_examples() -> None:
    rdwr = request(os.O_RDWR)
    assert plan_open(MINIMAL, rdwr).cached
    wronly = plan_open(MINIMAL, request(os.O_WRONLY | os.O_TRUNC))
    assert not wronly.cached and not can_seek(MINIMAL, wronly, no_seek=False)
    assert not plan_open(MINIMAL, request(os.O_RDONLY)).cached
    # Code, not doc: O_APPEND makes rclone open read+write, so it is cached and honoured.
    append = plan_open(MINIMAL, request(os.O_WRONLY | os.O_APPEND))
    assert append.cached and append.append and not append.read
    # A file with a cache item goes through it even for a plain read.
    assert plan_open(MINIMAL, request(os.O_RDONLY), in_cache=True).cached


def test_writes_and_full_examples() -> None:
    assert plan_open(WRITES, request(os.O_WRONLY)).cached
    assert not plan_open(WRITES, request(os.O_RDONLY)).cached
    read = plan_open(FULL, request(os.O_RDONLY))
    assert read == OpenPlan(cached=True, read=True, write=False, truncate=False, append=False)
    created = plan_open(FULL, request(os.O_RDWR | os.O_CREAT, exists=False))
    assert created.truncate and created.read and created.write
    kept = plan_open(FULL, request(os.O_RDWR | os.O_CREAT, exists=True))
    assert not kept.truncate


@pytest.mark.parametrize("mode", [MINIMAL, WRITES, FULL])
def test_read_only_volume(mode: CacheMode) -> None:
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND):
        assert refused(mode, request(flags), read_only=True) == errno.EROFS
    # Creating a missing file would change the volume too.
    assert (
        refused(mode, request(os.O_RDONLY | os.O_CREAT, exists=False), read_only=True)
        == errno.EROFS
    )
    assert plan_open(mode, request(os.O_RDONLY), read_only=True).read


def test_open_refused_is_a_cloudvol_error_with_errno() -> None:
    err = OpenRefused(errno.EROFS, "nope")
    assert isinstance(err, CloudvolError)
    assert err.errno == errno.EROFS
    os_err = err.to_oserror()
    assert os_err.errno == errno.EROFS and os_err.strerror == "nope"


def test_can_seek_rejects_a_cached_plan_in_mode_off() -> None:
    with pytest.raises(ValueError):
        can_seek(
            OFF, OpenPlan(cached=True, read=True, write=True, truncate=False, append=False), False
        )


# --- eviction --------------------------------------------------------------------


def item(
    path: str, size: int, at: float, *, open: bool = False, dirty: bool = False
) -> CacheItemUsage:
    return CacheItemUsage(path=path, present_bytes=size, last_access=at, open=open, dirty=dirty)


def test_old_clean_closed_items_go() -> None:
    items = [
        item("old", 10, 0),
        item("old-open", 10, 0, open=True),
        item("old-dirty", 10, 0, dirty=True),
        item("fresh", 10, 95),
        item("edge", 10, 90),  # exactly max_age ago: rclone's cut-off is inclusive
    ]
    assert choose_evictions(items, now=100, max_age=10, max_size=UNLIMITED) == ["old", "edge"]


def test_over_size_evicts_lru_first_counting_open_and_dirty_bytes() -> None:
    items = [
        item("big-open", 600, 1, open=True),
        item("dirty", 300, 2, dirty=True),
        item("b", 100, 20),
        item("a", 100, 10),
        item("c", 100, 30),
    ]
    # total 1200, limit 1000: a then b go (oldest first), c stays.
    assert choose_evictions(items, now=40, max_age=1000, max_size=1000) == ["a", "b"]


def test_quota_that_can_not_be_met_evicts_every_candidate_but_never_open_or_dirty() -> None:
    items = [item("open", 500, 0, open=True), item("x", 1, 5), item("dirty", 500, 0, dirty=True)]
    assert choose_evictions(items, now=10, max_age=1000, max_size=100) == ["x"]


def test_ties_broken_by_path_and_age_evictions_count_toward_quota() -> None:
    items = [item("b", 50, 5), item("a", 50, 5), item("c", 50, 50), item("d", 50, 60)]
    assert choose_evictions(items, now=100, max_age=1000, max_size=120) == ["a", "b"]
    # "a" and "b" are too old anyway; then the total (100) is within 120.
    assert choose_evictions(items, now=100, max_age=90, max_size=120) == ["a", "b"]


def test_no_limits_means_nothing_goes() -> None:
    items = [item("a", 10**12, 0)]
    assert choose_evictions(items, now=10**9, max_age=-1, max_size=UNLIMITED) == []
    assert choose_evictions(items, now=10**9, max_age=-1, max_size=0) == []


def test_duplicate_paths_rejected() -> None:
    with pytest.raises(ValueError):
        choose_evictions([item("a", 1, 0), item("a", 2, 0)], now=0, max_age=1, max_size=1)


usages = st.lists(
    st.builds(
        CacheItemUsage,
        path=st.text("abcdef", min_size=1, max_size=3),
        present_bytes=st.integers(0, 100),
        last_access=st.integers(0, 100).map(float),
        open=st.booleans(),
        dirty=st.booleans(),
    ),
    unique_by=lambda u: u.path,
    max_size=10,
)


@given(usages, st.integers(0, 100), st.one_of(st.just(UNLIMITED), st.integers(1, 500)))
def test_eviction_properties(items: list[CacheItemUsage], max_age: int, max_size: int) -> None:
    now = 100.0
    chosen = choose_evictions(items, now, float(max_age), max_size)
    by_path = {u.path: u for u in items}
    assert len(chosen) == len(set(chosen))
    assert all(not by_path[p].open and not by_path[p].dirty for p in chosen)
    # Every old enough candidate is chosen.
    for u in items:
        if not u.open and not u.dirty and now - u.last_access >= max_age:
            assert u.path in chosen
    remaining = [u for u in items if u.path not in chosen]
    total = sum(u.present_bytes for u in remaining)
    candidates_left = [u for u in remaining if not u.open and not u.dirty]
    if max_size != UNLIMITED and candidates_left:
        # Either within the limit, or nothing more could be removed.
        assert total <= max_size
        # LRU: anything kept is at least as recent as everything evicted for size.
        newest_evicted = max(
            ((by_path[p].last_access, p) for p in chosen if now - by_path[p].last_access < max_age),
            default=None,
        )
        if newest_evicted is not None:
            assert all((u.last_access, u.path) > newest_evicted for u in candidates_left)
    # Deterministic whatever the input order.
    assert choose_evictions(list(reversed(items)), now, float(max_age), max_size) == chosen


# --- retry delays ----------------------------------------------------------------


def test_retry_delays_double_and_cap_at_a_minute() -> None:
    assert [upload_retry_delay(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert upload_retry_delay(10**6) == 60
    assert upload_retry_delay(3, base=5, cap=300) == 20


@given(st.integers(1, 2000))
def test_retry_delays_never_shrink(n: int) -> None:
    assert 0 < upload_retry_delay(n) <= upload_retry_delay(n + 1) <= 60


def test_retry_delay_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError):
        upload_retry_delay(0)
