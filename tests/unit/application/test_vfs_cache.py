"""The VFS with its disk cache (modes minimal, writes, full) against the in-memory
storage and a real cache store in a temporary directory (no FUSE).

Write-back timing uses short real durations."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from adapters.cache import DiskCacheStore, has_dirty_items
from application.vfs import ROOT_INODE, Vfs
from application.vfs.cache import MAX_FETCH
from domain.cache_record import CacheRecord
from domain.volume import CacheMode, VfsOptions
from tests.fakes.storage import MemoryStorage, MemoryTree
from tests.unit.application.errnos import errno_of

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
RW, WO, RO = os.O_RDWR, os.O_WRONLY, os.O_RDONLY
CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def opts(mode: CacheMode = CacheMode.WRITES, **kw: object) -> VfsOptions:
    base = VfsOptions(dir_cache_time=60.0, cache_mode=mode, write_back=30.0)
    return replace(base, **kw)  # type: ignore[arg-type]


class Env:
    def __init__(self, tmp: Path, storage: MemoryStorage | None = None) -> None:
        self.cache_dir = tmp / "cache"
        self.storage = storage or MemoryStorage()
        self.tree = self.storage.tree
        self.vfss: list[Vfs] = []

    def store(self) -> DiskCacheStore:
        return DiskCacheStore(str(self.cache_dir))

    async def vfs(self, options: VfsOptions, **kw: object) -> Vfs:
        vfs = Vfs(
            self.storage,
            options,
            cache_store=self.store(),
            upload_retry_base=0.02,
            **kw,  # type: ignore[arg-type]
        )
        await vfs.start()
        self.vfss.append(vfs)
        return vfs


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path)
    yield e
    for vfs in e.vfss:
        await vfs.stop()


async def inode(vfs: Vfs, path: str) -> int:
    return (await vfs.resolve(path)).inode


async def write_new(vfs: Vfs, name: str, data: bytes, flags: int = CREATE) -> None:
    fh, _ = await vfs.create(ROOT_INODE, name, flags)
    await vfs.write(fh, 0, data)
    await vfs.flush(fh)
    await vfs.release(fh)


async def read_all(vfs: Vfs, path: str, piece: int = 128 * 1024) -> bytes:
    fh = await vfs.open(await inode(vfs, path), RO)
    out = bytearray()
    while data := await vfs.read(fh, len(out), piece):
        out += data
    await vfs.release(fh)
    return bytes(out)


async def eventually(cond: Callable[[], bool], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not cond():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


# ----- open rules per mode ----------------------------------------------------------


async def test_mode_minimal_caches_only_read_write_opens(env: Env) -> None:
    env.tree.put("f", b"0123456789")
    vfs = await env.vfs(opts(CacheMode.MINIMAL))
    ino = await inode(vfs, "f")
    fh = await vfs.open(ino, RO)  # streamed
    assert not vfs.cache.has("f")
    assert await vfs.read(fh, 0, 4) == b"0123"
    await vfs.release(fh)
    fh = await vfs.open(ino, RW)  # cached: read, seek and write anywhere
    assert vfs.cache.has("f")
    assert await vfs.write(fh, 2, b"ab") == 2
    assert await vfs.read(fh, 0, 10) == b"01ab456789"
    await vfs.release(fh)
    # A write-only open of an existing file without O_TRUNC is not cached in
    # minimal mode, but the file has a cache item now: it goes through it.
    fh = await vfs.open(ino, WO)
    await vfs.write(fh, 9, b"Z")
    await vfs.release(fh)
    await vfs.drain()
    assert env.tree.get("f") == b"01ab45678Z"


async def test_mode_writes_streams_reads_and_caches_writes(env: Env) -> None:
    env.tree.put("f", b"remote data")
    vfs = await env.vfs(opts(CacheMode.WRITES))
    ino = await inode(vfs, "f")
    fh = await vfs.open(ino, RO)
    assert await vfs.read(fh, 0, 6) == b"remote"
    await vfs.release(fh)
    assert not vfs.cache.has("f")
    fh = await vfs.open(ino, WO)  # no O_TRUNC: the existing data is kept
    await vfs.write(fh, 0, b"R")
    assert await errno_of(vfs.read(fh, 0, 1)) == errno.EBADF
    await vfs.release(fh)
    assert (await vfs.getattr(ino)).size == 11
    await vfs.drain()
    assert env.tree.get("f") == b"Remote data"


async def test_read_only_and_bad_flags_errnos(env: Env) -> None:
    env.tree.put("f", b"x")
    vfs = await env.vfs(opts(CacheMode.FULL, read_only=True))
    ino = await inode(vfs, "f")
    assert await errno_of(vfs.open(ino, WO)) == errno.EROFS
    assert await errno_of(vfs.open(ino, RW)) == errno.EROFS
    assert await errno_of(vfs.open(ino, RO | os.O_TRUNC)) == errno.EINVAL
    fh = await vfs.open(ino, RO)
    assert await errno_of(vfs.write(fh, 0, b"y")) == errno.EBADF
    await vfs.release(fh)


async def test_append_writes_at_the_end(env: Env) -> None:
    env.tree.put("log", b"one\n")
    vfs = await env.vfs(opts(CacheMode.WRITES))
    fh = await vfs.open(await inode(vfs, "log"), WO | os.O_APPEND)
    await vfs.write(fh, 0, b"two\n")
    await vfs.release(fh)
    await vfs.drain()
    assert env.tree.get("log") == b"one\ntwo\n"


# ----- write-back -------------------------------------------------------------------


async def test_dirty_file_is_listed_with_local_size_and_uploaded_after_write_back(
    env: Env,
) -> None:
    env.tree.put("old", b"1")
    vfs = await env.vfs(opts(write_back=0.3))
    await write_new(vfs, "new", b"hello")
    fh = await vfs.open(await inode(vfs, "old"), RW)
    await vfs.write(fh, 1, b"2345")
    await vfs.release(fh)
    vfs.forget_all()  # a fresh listing must still show the local sizes
    fh = await vfs.opendir(ROOT_INODE)
    sizes = {name: attr.size for name, attr in await vfs.readdir(fh, 0)}
    await vfs.releasedir(fh)
    assert sizes == {"new": 5, "old": 5}
    assert "new" not in env.tree.files and env.tree.get("old") == b"1"
    await eventually(lambda: "new" in env.tree.files and env.tree.get("old") == b"12345")
    assert env.tree.get("new") == b"hello"
    assert vfs.pending_uploads() == 0


async def test_write_back_zero_uploads_at_close(env: Env) -> None:
    vfs = await env.vfs(opts(write_back=0.0))
    await write_new(vfs, "f", b"now")
    # opts() defaults to a 30 s write-back: landing well within that is "at close".
    await eventually(lambda: "f" in env.tree.files)


async def test_write_back_waits_for_the_last_close(env: Env) -> None:
    vfs = await env.vfs(opts(write_back=0.02))
    await write_new(vfs, "f", b"v1")
    fh = await vfs.open(await inode(vfs, "f"), RO)  # still in use: no upload yet
    await asyncio.sleep(0.5)  # 25 times the write-back delay
    assert "f" not in env.tree.files and vfs.pending_uploads() == 1
    await vfs.release(fh)  # allowed now: it does upload
    await eventually(lambda: "f" in env.tree.files)


class GatedStorage(MemoryStorage):
    """Uploads wait at commit for `gate`; counts how many are in progress."""

    def __init__(self, tree: MemoryTree | None = None) -> None:
        super().__init__(tree)
        self.gate = asyncio.Event()
        self.active = 0
        self.peak = 0
        self.opened = 0
        self.fail_first = 0

    async def open_writer(self, path: str) -> GatedWriter:
        if self.fail_first > 0:
            self.fail_first -= 1
            raise OSError(errno.EIO, "injected upload failure")
        writer = await super().open_writer(path)
        self.opened += 1
        return GatedWriter(self, writer)


class GatedWriter:
    def __init__(self, owner: GatedStorage, inner: object) -> None:
        self._owner, self._inner = owner, inner

    async def write(self, data: bytes) -> None:
        await self._inner.write(data)  # type: ignore[attr-defined]

    async def commit(self) -> None:
        self._owner.active += 1
        self._owner.peak = max(self._owner.peak, self._owner.active)
        try:
            await self._owner.gate.wait()
            await self._inner.commit()  # type: ignore[attr-defined]
        finally:
            self._owner.active -= 1

    async def abort(self) -> None:
        await self._inner.abort()  # type: ignore[attr-defined]


async def test_at_most_transfers_uploads_at_once(tmp_path: Path) -> None:
    env = Env(tmp_path, GatedStorage())
    storage = env.storage
    assert isinstance(storage, GatedStorage)
    vfs = await env.vfs(opts(write_back=0.0, transfers=2))
    try:
        for name in "abcde":
            await write_new(vfs, name, name.encode())
        await eventually(lambda: storage.active == 2)
        await asyncio.sleep(0.1)
        assert storage.active == 2
        storage.gate.set()
        await eventually(lambda: all(n in env.tree.files for n in "abcde"))
        assert storage.peak == 2
    finally:
        await vfs.stop()


async def test_failed_uploads_are_retried(tmp_path: Path) -> None:
    env = Env(tmp_path, GatedStorage())
    storage = env.storage
    assert isinstance(storage, GatedStorage)
    storage.gate.set()
    storage.fail_first = 3
    vfs = await env.vfs(opts(write_back=0.0))
    try:
        await write_new(vfs, "f", b"persistent")
        # Retries after 0.02, 0.04 and 0.08 s (the test's base delay).
        await eventually(lambda: "f" in env.tree.files, within=3.0)
        assert env.tree.get("f") == b"persistent"
        assert storage.fail_first == 0
    finally:
        await vfs.stop()


async def test_a_change_during_the_upload_restarts_it(tmp_path: Path) -> None:
    env = Env(tmp_path, GatedStorage())
    storage = env.storage
    assert isinstance(storage, GatedStorage)
    vfs = await env.vfs(opts(write_back=0.0))
    try:
        await write_new(vfs, "f", b"first")
        await eventually(lambda: storage.active == 1)
        fh = await vfs.open(await inode(vfs, "f"), RW)
        await vfs.write(fh, 0, b"FIRST")  # the running upload is cancelled
        await eventually(lambda: storage.active == 0)
        storage.gate.set()
        await vfs.release(fh)
        await eventually(lambda: "f" in env.tree.files and vfs.pending_uploads() == 0)
        assert env.tree.get("f") == b"FIRST"
        assert storage.opened == 2
    finally:
        await vfs.stop()


async def test_drain_uploads_everything_now(env: Env) -> None:
    vfs = await env.vfs(opts(write_back=3600.0))
    await write_new(vfs, "a", b"A")
    await write_new(vfs, "b", b"B")
    assert vfs.pending_uploads() == 2
    await vfs.aclose()
    with anyio.fail_after(5):
        await vfs.drain()
    assert env.tree.get("a") == b"A" and env.tree.get("b") == b"B"


async def test_an_upload_remakes_its_missing_remote_directories(env: Env) -> None:
    env.tree.put("d/e/keep", b"k")
    vfs = await env.vfs(opts(write_back=3600.0))
    e = await inode(vfs, "d/e")
    fh, _ = await vfs.create(e, "f", CREATE)
    await vfs.write(fh, 0, b"pending")
    await vfs.flush(fh)
    await vfs.release(fh)
    # Both directories go from the remote behind the VFS's back.
    del env.tree.files["d/e/keep"]
    env.tree.dirs -= {"d", "d/e"}
    await vfs.aclose()
    with anyio.fail_after(5):
        await vfs.drain()  # made again, like rclone: not retried forever
    assert env.tree.get("d/e/f") == b"pending"
    assert {"d", "d/e"} <= env.tree.dirs


# ----- renames and unlinks of dirty files --------------------------------------------


async def test_rename_of_a_dirty_file_uploads_to_the_new_name(env: Env) -> None:
    env.tree.put("d/x", b"")
    vfs = await env.vfs(opts(write_back=0.2))
    await write_new(vfs, "draft", b"text")
    d = await inode(vfs, "d")
    await vfs.rename(ROOT_INODE, "draft", d, "final")
    assert (await vfs.resolve("d/final")).size == 4
    await eventually(lambda: "d/final" in env.tree.files)
    await asyncio.sleep(0.1)
    assert "draft" not in env.tree.files
    assert env.tree.get("d/final") == b"text"
    assert not (env.cache_dir / "data" / "draft").exists()


async def test_rename_of_a_changed_remote_file_moves_it_then_uploads(env: Env) -> None:
    env.tree.put("a", b"old")
    vfs = await env.vfs(opts(write_back=0.2))
    fh = await vfs.open(await inode(vfs, "a"), WO | os.O_TRUNC)
    await vfs.write(fh, 0, b"new")
    await vfs.release(fh)
    await vfs.rename(ROOT_INODE, "a", ROOT_INODE, "b")
    assert "a" not in env.tree.files and env.tree.get("b") == b"old"
    await eventually(lambda: env.tree.get("b") == b"new")
    assert "a" not in env.tree.files


async def test_rename_of_a_directory_moves_its_pending_uploads(env: Env) -> None:
    env.tree.put("dir/keep", b"k")
    vfs = await env.vfs(opts(write_back=0.2))
    d = await inode(vfs, "dir")
    fh, _ = await vfs.create(d, "new", CREATE)
    await vfs.write(fh, 0, b"inside")
    await vfs.release(fh)
    await vfs.rename(ROOT_INODE, "dir", ROOT_INODE, "moved")
    await eventually(lambda: "moved/new" in env.tree.files)
    assert env.tree.get("moved/new") == b"inside"
    assert not any(p.startswith("dir/") for p in env.tree.files)


async def test_unlink_of_a_dirty_file_cancels_its_upload(env: Env) -> None:
    vfs = await env.vfs(opts(write_back=0.1))
    await write_new(vfs, "tmp", b"scratch")
    await write_new(vfs, "kept", b"kept")  # due after tmp's upload would have been
    await vfs.unlink(ROOT_INODE, "tmp")
    await eventually(lambda: "kept" in env.tree.files)
    assert "tmp" not in env.tree.files
    assert vfs.pending_uploads() == 0
    assert await errno_of(vfs.lookup(ROOT_INODE, "tmp")) == errno.ENOENT


async def test_unlink_while_uploading_leaves_nothing(tmp_path: Path) -> None:
    env = Env(tmp_path, GatedStorage())
    storage = env.storage
    assert isinstance(storage, GatedStorage)
    vfs = await env.vfs(opts(write_back=0.0))
    try:
        await write_new(vfs, "f", b"data")
        await eventually(lambda: storage.active == 1)
        await vfs.unlink(ROOT_INODE, "f")
        storage.gate.set()
        await write_new(vfs, "g", b"after")  # uploads go through again...
        await eventually(lambda: "g" in env.tree.files)
        assert "f" not in env.tree.files  # ...but the unlinked file's never lands
    finally:
        await vfs.stop()


# ----- fingerprints -----------------------------------------------------------------


async def test_clean_copy_of_a_changed_remote_file_is_dropped(env: Env) -> None:
    env.tree.put("f", b"version one")
    vfs = await env.vfs(opts(CacheMode.FULL))
    assert await read_all(vfs, "f") == b"version one"
    env.tree.put("f", b"version two!")
    assert await read_all(vfs, "f") == b"version two!"
    # Same size, other time: still a change.
    env.tree.put("f", b"version 3...")
    env.tree.files["f"].mtime += 10
    assert await read_all(vfs, "f") == b"version 3..."


async def test_fast_fingerprint_trusts_the_directory_cache(env: Env) -> None:
    env.tree.put("f", b"aaaa")
    vfs = await env.vfs(opts(CacheMode.FULL, fast_fingerprint=True))
    assert await read_all(vfs, "f") == b"aaaa"
    reads = len(env.tree.calls)
    env.tree.put("f", b"bbbb")  # behind the VFS's back, listing still fresh
    assert await read_all(vfs, "f") == b"aaaa"  # no stat: the cached copy stands
    assert len(env.tree.calls) == reads
    vfs.forget_all()
    assert await read_all(vfs, "f") == b"bbbb"  # the listing shows the change


async def test_dirty_local_copy_wins_over_a_remote_change(env: Env) -> None:
    env.tree.put("f", b"base")
    vfs = await env.vfs(opts(CacheMode.FULL, write_back=3600.0))
    fh = await vfs.open(await inode(vfs, "f"), RW)
    await vfs.write(fh, 0, b"MINE")
    await vfs.release(fh)
    env.tree.put("f", b"theirs")
    assert await read_all(vfs, "f") == b"MINE"
    await vfs.drain()
    assert env.tree.get("f") == b"MINE"


# ----- full mode: sparse reads ------------------------------------------------------


async def test_full_mode_downloads_only_what_is_read(env: Env) -> None:
    content = os.urandom(16 * MiB)
    env.tree.put("big", content)
    vfs = await env.vfs(opts(CacheMode.FULL))
    fh = await vfs.open(await inode(vfs, "big"), RO)
    assert await vfs.read(fh, 8 * MiB, 4096) == content[8 * MiB : 8 * MiB + 4096]
    await vfs.release(fh)
    item = vfs.cache.item("big")
    assert item is not None
    ranges = item.record.ranges.ranges()
    assert len(ranges) == 1 and ranges[0][0] == 8 * MiB
    assert ranges[0][1] - ranges[0][0] < MAX_FETCH
    data_file = env.cache_dir / "data" / "big"
    assert data_file.stat().st_size == 16 * MiB
    assert data_file.stat().st_blocks * 512 < MiB  # sparse
    # A repeated read is served from disk.
    calls = len(env.tree.calls)
    fh = await vfs.open(await inode(vfs, "big"), RO)
    assert await vfs.read(fh, 8 * MiB, 4096) == content[8 * MiB : 8 * MiB + 4096]
    await vfs.release(fh)
    assert len(env.tree.calls) == calls
    # A sequential read of everything, and the record on disk agrees.
    assert await read_all(vfs, "big") == content
    record = CacheRecord.from_json((env.cache_dir / "meta" / "big").read_bytes())
    assert record.ranges.ranges() == [(0, 16 * MiB)] and not record.dirty


async def test_read_ahead_on_disk_in_full_mode(env: Env) -> None:
    env.tree.put("big", os.urandom(32 * MiB))

    async def cached_after_reading(vfs: Vfs, upto: int) -> CacheRecord:
        fh = await vfs.open(await inode(vfs, "big"), RO)
        for offset in range(0, upto, 128 * 1024):
            await vfs.read(fh, offset, 128 * 1024)
        item = vfs.cache.item("big")
        assert item is not None
        await eventually(lambda: item.inflight_bytes() == 0)  # the read-ahead landed
        await vfs.release(fh)
        return item.record

    # buffer-size plus vfs-read-ahead beyond what was read lands on disk...
    vfs = await env.vfs(opts(CacheMode.FULL, buffer_size=1 * MiB, read_ahead=8 * MiB))
    assert (await cached_after_reading(vfs, 8 * MiB)).ranges.covers(0, 17 * MiB)
    await vfs.stop()
    # ...without vfs-read-ahead, only buffer-size is fetched ahead.
    env2 = Env(env.cache_dir.parent / "second", env.storage)
    vfs2 = await env2.vfs(opts(CacheMode.FULL, buffer_size=1 * MiB))
    try:
        record = await cached_after_reading(vfs2, 8 * MiB)
        assert record.ranges.covers(0, 9 * MiB)
        assert not record.ranges.covers(0, 11 * MiB)
    finally:
        await vfs2.stop()


# ----- crash recovery -----------------------------------------------------------------


async def test_dirty_items_on_disk_are_uploaded_at_the_next_start(env: Env) -> None:
    first = await env.vfs(opts(write_back=3600.0))
    await write_new(first, "a", b"closed before the crash")
    fh, _ = await first.create(ROOT_INODE, "b", CREATE)
    await first.write(fh, 0, b"flushed")
    await first.flush(fh)  # close(2) returned; the worker dies before release
    await first.stop()  # a crash: nothing uploaded
    assert not env.tree.files
    second = await env.vfs(opts(write_back=3600.0))
    assert sorted(n for n, _ in await _listing(second)) == ["a", "b"]
    await eventually(lambda: len(env.tree.files) == 2)
    assert env.tree.get("a") == b"closed before the crash"
    assert env.tree.get("b") == b"flushed"


async def _listing(vfs: Vfs) -> list[tuple[str, int]]:
    fh = await vfs.opendir(ROOT_INODE)
    entries = [(name, attr.size) for name, attr in await vfs.readdir(fh, 0)]
    await vfs.releasedir(fh)
    return entries


async def test_has_dirty_items_reads_the_records(tmp_path: Path) -> None:
    env = Env(tmp_path / "cache" / "vfs", MemoryStorage())
    env.cache_dir = tmp_path / "cache" / "vfs" / "vol"
    vfs = await env.vfs(opts(write_back=3600.0))
    try:
        assert not has_dirty_items(str(tmp_path / "cache"), "vol")
        await write_new(vfs, "f", b"x")
        assert has_dirty_items(str(tmp_path / "cache"), "vol")
        await vfs.drain()
        assert not has_dirty_items(str(tmp_path / "cache"), "vol")
    finally:
        await vfs.stop()


async def test_damaged_records_are_set_aside_and_never_uploaded(env: Env) -> None:
    env.tree.put("f", b"remote")
    vfs = await env.vfs(opts(CacheMode.WRITES, write_back=3600))
    await write_new(vfs, "f", b"local edit")  # dirty, its upload an hour away
    await vfs.stop()
    (env.cache_dir / "meta" / "f").write_bytes(b'{"version": 1, "path": "f", "size": ')
    vfs = await env.vfs(opts(CacheMode.WRITES, write_back=0))
    assert not vfs.cache.has("f")
    assert not (env.cache_dir / "data" / "f").exists()
    assert await read_all(vfs, "f") == b"remote"
    await vfs.drain()
    assert env.tree.get("f") == b"remote"  # the good remote file was not overwritten
    [kept] = (env.cache_dir / "corrupt").iterdir()
    assert (kept / "f").read_bytes() == b"local edit"


# ----- eviction ---------------------------------------------------------------------


class WallClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_eviction_by_age_and_size_spares_open_and_dirty_items(env: Env) -> None:
    for name in "abcd":
        env.tree.put(name, os.urandom(MiB))
    clock = WallClock()
    vfs = await env.vfs(
        opts(CacheMode.FULL, cache_max_age=100.0, cache_max_size=5 * MiB // 2, write_back=3600),
        wall_clock=clock,
    )
    for name in "abc":
        await read_all(vfs, name)
        clock.now += 10
    held = await vfs.open(await inode(vfs, "a"), RO)  # open: never evicted
    fh = await vfs.open(await inode(vfs, "d"), RW)
    await vfs.write(fh, 0, b"dirty")
    await vfs.release(fh)  # dirty: never evicted
    # Over 2.5 MiB: the least recently used clean, closed item goes (b, not a).
    assert await vfs.cache.clean() == ["b"]
    assert sorted(i.path for i in vfs.cache.items()) == ["a", "c", "d"]
    assert not (env.cache_dir / "data" / "b").exists()
    await vfs.release(held)
    clock.now += 1000  # everything is old now
    assert sorted(await vfs.cache.clean()) == ["a", "c"]
    assert [i.path for i in vfs.cache.items()] == ["d"]


async def test_cache_poll_interval_runs_the_cleaner(env: Env) -> None:
    env.tree.put("f", b"x" * 1000)
    vfs = await env.vfs(opts(CacheMode.FULL, cache_max_age=0.0, cache_poll_interval=0.05))
    await read_all(vfs, "f")
    await eventually(lambda: not vfs.cache.has("f"))


# ----- checksums ----------------------------------------------------------------------


class LossyStorage(MemoryStorage):
    """A remote that silently loses the last byte of every upload."""

    commits = 0

    async def open_writer(self, path: str) -> LossyWriter:
        return LossyWriter(self, await super().open_writer(path))


class LossyWriter:
    def __init__(self, owner: LossyStorage, inner: object) -> None:
        self._owner, self._inner = owner, inner

    async def write(self, data: bytes) -> None:
        await self._inner.write(data)  # type: ignore[attr-defined]

    async def commit(self) -> None:
        buf = self._inner._buf  # type: ignore[attr-defined]
        del buf[-1:]
        await self._inner.commit()  # type: ignore[attr-defined]
        self._owner.commits += 1

    async def abort(self) -> None:
        await self._inner.abort()  # type: ignore[attr-defined]


@pytest.mark.parametrize("no_checksum", [False, True])
async def test_uploads_are_checked_unless_no_checksum(tmp_path: Path, no_checksum: bool) -> None:
    storage = LossyStorage()
    env = Env(tmp_path, storage)
    vfs = await env.vfs(opts(write_back=0.0, no_checksum=no_checksum))
    try:
        await write_new(vfs, "f", b"12345")
        if no_checksum:
            await eventually(lambda: vfs.pending_uploads() == 0)  # believed
            assert storage.commits == 1
        else:
            await eventually(lambda: storage.commits >= 2)  # the short upload is retried
            assert vfs.pending_uploads() == 1
    finally:
        await vfs.stop()


# ----- truncate and times -------------------------------------------------------------


async def test_truncate_without_a_handle_goes_through_the_cache(env: Env) -> None:
    env.tree.put("f", b"0123456789")
    vfs = await env.vfs(opts(CacheMode.WRITES, write_back=0.0))
    ino = await inode(vfs, "f")
    assert (await vfs.setattr(ino, size=4)).size == 4
    await eventually(lambda: env.tree.get("f") == b"0123")
    assert (await vfs.setattr(ino, size=6)).size == 6
    await eventually(lambda: env.tree.get("f") == b"0123\0\0")


async def test_mtime_of_a_dirty_file_is_set_by_its_upload(env: Env) -> None:
    vfs = await env.vfs(opts(write_back=0.1))
    await write_new(vfs, "f", b"x")
    ino = await inode(vfs, "f")
    await vfs.setattr(ino, mtime=1_500_000_000.0)
    await eventually(lambda: "f" in env.tree.files and vfs.pending_uploads() == 0)
    assert env.tree.files["f"].mtime == 1_500_000_000.0
    assert (await vfs.getattr(ino)).mtime == 1_500_000_000.0


# ----- chunked reading (uncached reads) ---------------------------------------------


def _requests(tree: MemoryTree, path: str) -> list[tuple[int, int]]:
    out = []
    for call in tree.calls:
        op, name, offset, size = call.split()
        if op == "read" and name == path:
            out.append((int(offset), int(size)))
    return out


def _crosses(requests: list[tuple[int, int]], bounds: list[int]) -> bool:
    return any(start < b < start + size for start, size in requests for b in bounds)


async def test_uncached_reads_follow_the_chunk_schedule(env: Env) -> None:
    content = os.urandom(24 * MiB)
    env.tree.put("f", content)
    doubling = [1 * MiB, 3 * MiB, 7 * MiB, 15 * MiB]  # 1M, then 2M, 4M, 8M...

    vfs = await env.vfs(opts(CacheMode.OFF, read_chunk_size=1 * MiB))
    assert await read_all(vfs, "f") == content
    assert not _crosses(_requests(env.tree, "f"), doubling)

    env.tree.calls.clear()
    vfs = await env.vfs(opts(CacheMode.OFF, read_chunk_size=MiB, read_chunk_size_limit=MiB))
    assert await read_all(vfs, "f") == content
    fixed = _requests(env.tree, "f")
    assert not _crosses(fixed, list(range(MiB, 24 * MiB, MiB)))
    assert max(size for _, size in fixed) == MiB

    # Chunking off (0): the reader's own pieces, which do cross those bounds.
    env.tree.calls.clear()
    vfs = await env.vfs(opts(CacheMode.OFF, read_chunk_size=0))
    assert await read_all(vfs, "f") == content
    assert _crosses(_requests(env.tree, "f"), doubling)


async def test_a_seek_starts_the_chunk_schedule_over(env: Env) -> None:
    env.tree.put("f", os.urandom(16 * MiB))
    vfs = await env.vfs(opts(CacheMode.OFF, read_chunk_size=256 * 1024))
    fh = await vfs.open(await inode(vfs, "f"), RO)
    await vfs.read(fh, 0, 4096)
    env.tree.calls.clear()
    await vfs.read(fh, 10 * MiB, 4096)
    first = _requests(env.tree, "f")[0]
    assert first == (10 * MiB, 256 * 1024)  # the initial chunk size again
    await vfs.release(fh)


# A read-wait far longer than the test: the early read must be released by the
# in-order one arriving, not by the wait running out.
@pytest.mark.parametrize("read_wait", [0.0, 60.0])
async def test_read_wait_holds_an_early_read_for_the_in_order_one(
    env: Env, read_wait: float
) -> None:
    env.tree.put("f", os.urandom(2 * MiB))
    vfs = await env.vfs(opts(CacheMode.OFF, read_wait=read_wait))
    fh = await vfs.open(await inode(vfs, "f"), RO)
    piece = 128 * 1024
    early = asyncio.ensure_future(vfs.read(fh, piece, piece))
    if read_wait:
        for _ in range(50):  # the loop runs the early read as far as it goes
            await asyncio.sleep(0)
        assert not early.done() and not _requests(env.tree, "f")  # held...
    else:
        await early  # it seeked at once, before the in-order read came
    first = await vfs.read(fh, 0, piece)  # ...until the in-order read comes
    ahead = await asyncio.wait_for(early, 10.0)
    assert first + ahead == env.tree.get("f")[: 2 * piece]
    starts = [offset for offset, _ in _requests(env.tree, "f")]
    if read_wait:
        assert starts[0] == 0  # the early read waited: one stream from the start
    else:
        assert starts[0] == piece  # it seeked at once
    await vfs.release(fh)


async def test_no_seek_refuses_uncached_seeks_only(env: Env) -> None:
    env.tree.put("f", os.urandom(16 * MiB))
    vfs = await env.vfs(opts(CacheMode.WRITES, no_seek=True, read_wait=0.0))
    ino = await inode(vfs, "f")
    fh = await vfs.open(ino, RO)
    await vfs.read(fh, 0, 4096)
    assert await errno_of(vfs.read(fh, 8 * MiB, 4096)) == errno.ESPIPE
    await vfs.release(fh)
    fh = await vfs.open(ino, RW)  # a cache file can always be seeked
    assert len(await vfs.read(fh, 8 * MiB, 4096)) == 4096
    await vfs.release(fh)


# ----- streamed uploads: a sequential writer is followed ------------------------------


class RecordingStorage(MemoryStorage):
    """Keeps every writer it opens, to tell what each was sent and how it ended.
    `fail_at`: the next writer opened fails once it would pass that many bytes."""

    def __init__(self, tree: MemoryTree | None = None) -> None:
        super().__init__(tree)
        self.writers: list[RecordingWriter] = []
        self.fail_at: int | None = None

    async def open_writer(self, path: str) -> RecordingWriter:
        fail_at, self.fail_at = self.fail_at, None
        writer = RecordingWriter(path, await super().open_writer(path), fail_at)
        self.writers.append(writer)
        return writer

    def sent(self) -> int:
        return sum(w.sent for w in self.writers)

    def states(self) -> list[tuple[str, str]]:
        return [(w.path, w.state) for w in self.writers]


class RecordingWriter:
    def __init__(self, path: str, inner: object, fail_at: int | None) -> None:
        self.path, self._inner, self._fail_at = path, inner, fail_at
        self.sent = 0
        self.state = "open"

    async def write(self, data: bytes) -> None:
        if self._fail_at is not None and self.sent + len(data) > self._fail_at:
            raise OSError(errno.ECONNRESET, "connection lost (injected)")
        await self._inner.write(data)  # type: ignore[attr-defined]
        self.sent += len(data)

    async def commit(self) -> None:
        await self._inner.commit()  # type: ignore[attr-defined]
        self.state = "committed"

    async def abort(self) -> None:
        await self._inner.abort()  # type: ignore[attr-defined]
        self.state = "aborted"


@pytest.fixture
async def renv(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path, RecordingStorage())
    yield e
    for vfs in e.vfss:
        await vfs.stop()


def recording(env: Env) -> RecordingStorage:
    assert isinstance(env.storage, RecordingStorage)
    return env.storage


async def write_in_sequence(
    vfs: Vfs, fh: int, data: bytes, start: int = 0, piece: int = MiB
) -> None:
    for pos in range(start, len(data), piece):
        await vfs.write(fh, pos, data[pos : pos + piece])
        await asyncio.sleep(0)  # between two FUSE requests the loop runs others


async def test_a_sequential_write_is_sent_while_written_and_only_once(renv: Env) -> None:
    storage = recording(renv)
    vfs = await renv.vfs(opts(write_back=3600.0))
    content = os.urandom(16 * MiB + 12345)
    fh, _ = await vfs.create(ROOT_INODE, "f", CREATE)
    await write_in_sequence(vfs, fh, content[: 12 * MiB])
    await eventually(lambda: storage.sent() == 12 * MiB)  # still open: sent already
    assert storage.states() == [("f", "open")]
    await write_in_sequence(vfs, fh, content, start=12 * MiB)
    await vfs.flush(fh)
    await vfs.release(fh)
    await eventually(lambda: storage.sent() == len(content))  # the tail follows the close
    assert "f" not in renv.tree.files  # the name comes with the regular upload only
    with anyio.fail_after(5):
        await vfs.drain()
    assert renv.tree.get("f") == content
    assert storage.states() == [("f", "committed")]
    assert storage.sent() == len(content)
    assert vfs.pending_uploads() == 0


async def test_a_streamed_file_is_named_when_its_write_back_fires(renv: Env) -> None:
    storage = recording(renv)
    vfs = await renv.vfs(opts(write_back=0.5))
    content = os.urandom(8 * MiB)
    fh, _ = await vfs.create(ROOT_INODE, "f", CREATE)
    await write_in_sequence(vfs, fh, content)
    await vfs.release(fh)
    await eventually(lambda: storage.sent() == len(content))
    assert "f" not in renv.tree.files
    await eventually(lambda: "f" in renv.tree.files and vfs.pending_uploads() == 0)
    assert renv.tree.get("f") == content
    assert storage.states() == [("f", "committed")] and storage.sent() == len(content)


async def test_a_small_file_is_not_streamed(renv: Env) -> None:
    storage = recording(renv)
    vfs = await renv.vfs(opts(write_back=3600.0))
    content = os.urandom(3 * MiB)
    fh, _ = await vfs.create(ROOT_INODE, "f", CREATE)
    await write_in_sequence(vfs, fh, content)
    await vfs.release(fh)
    await asyncio.sleep(0.05)
    assert storage.writers == []
    await vfs.drain()
    assert renv.tree.get("f") == content
    assert storage.states() == [("f", "committed")]


async def test_a_write_back_in_the_file_aborts_its_stream(renv: Env) -> None:
    storage = recording(renv)
    vfs = await renv.vfs(opts(write_back=3600.0))
    content = bytearray(os.urandom(12 * MiB))
    fh, _ = await vfs.create(ROOT_INODE, "f", CREATE)
    await write_in_sequence(vfs, fh, content[: 8 * MiB])
    await eventually(lambda: storage.sent() == 8 * MiB)
    await vfs.write(fh, 100, b"X" * 10)  # a seek back over bytes already sent
    content[100:110] = b"X" * 10
    await eventually(lambda: storage.states() == [("f", "aborted")])
    await write_in_sequence(vfs, fh, content, start=8 * MiB)
    await vfs.release(fh)
    assert len(storage.writers) == 1  # no stream once out of sequence
    await vfs.drain()
    assert renv.tree.get("f") == content
    assert storage.states() == [("f", "aborted"), ("f", "committed")]
    assert storage.writers[1].sent == len(content)


async def test_a_truncate_aborts_the_stream_and_emptying_starts_a_new_one(renv: Env) -> None:
    storage = recording(renv)
    vfs = await renv.vfs(opts(write_back=3600.0))
    content = os.urandom(8 * MiB)
    fh, _ = await vfs.create(ROOT_INODE, "f", CREATE)
    ino = await inode(vfs, "f")
    await write_in_sequence(vfs, fh, content)
    await eventually(lambda: storage.sent() == 8 * MiB)
    await vfs.setattr(ino, size=5 * MiB)
    await eventually(lambda: storage.states() == [("f", "aborted")])
    await vfs.write(fh, 5 * MiB, b"tail")  # at the end, but the sequence is broken
    await asyncio.sleep(0.05)
    assert len(storage.writers) == 1
    # Emptied and written again from the start: followed again.
    await vfs.setattr(ino, size=0)
    again = os.urandom(6 * MiB)
    await write_in_sequence(vfs, fh, again)
    await eventually(lambda: storage.states() == [("f", "aborted"), ("f", "open")])
    await vfs.setattr(ino, size=6 * MiB)  # no change of size: the stream stays valid
    await vfs.release(fh)
    await vfs.drain()
    assert renv.tree.get("f") == again
    assert storage.states() == [("f", "aborted"), ("f", "committed")]
    assert storage.writers[1].sent == len(again)


async def test_a_rename_aborts_the_stream_and_uploads_to_the_new_name(renv: Env) -> None:
    storage = recording(renv)
    vfs = await renv.vfs(opts(write_back=3600.0))
    content = os.urandom(10 * MiB)
    fh, _ = await vfs.create(ROOT_INODE, "f", CREATE)
    await write_in_sequence(vfs, fh, content[: 6 * MiB])
    await eventually(lambda: storage.sent() == 6 * MiB)
    await vfs.rename(ROOT_INODE, "f", ROOT_INODE, "g")
    # Aborted before the rename returns: no temporary file to move along with it.
    assert storage.states() == [("f", "aborted")]
    await write_in_sequence(vfs, fh, content, start=6 * MiB)
    await vfs.release(fh)
    await vfs.drain()
    assert renv.tree.get("g") == content and "f" not in renv.tree.files
    assert storage.states() == [("f", "aborted"), ("g", "committed")]


async def test_a_removed_file_leaves_no_stream_behind(renv: Env) -> None:
    storage = recording(renv)
    vfs = await renv.vfs(opts(write_back=3600.0))
    content = os.urandom(10 * MiB)
    fh, _ = await vfs.create(ROOT_INODE, "f", CREATE)
    await write_in_sequence(vfs, fh, content[: 6 * MiB])
    await eventually(lambda: storage.sent() == 6 * MiB)
    await vfs.unlink(ROOT_INODE, "f")
    assert storage.states() == [("f", "aborted")]
    await write_in_sequence(vfs, fh, content, start=6 * MiB)  # still open: still written
    await vfs.release(fh)
    await vfs.drain()
    assert not renv.tree.files
    assert storage.states() == [("f", "aborted")]


async def test_a_failed_stream_falls_back_to_a_whole_upload(renv: Env) -> None:
    storage = recording(renv)
    storage.fail_at = 6 * MiB
    vfs = await renv.vfs(opts(write_back=3600.0))
    content = os.urandom(16 * MiB)
    fh, _ = await vfs.create(ROOT_INODE, "f", CREATE)
    await write_in_sequence(vfs, fh, content)
    await eventually(lambda: storage.states() == [("f", "aborted")])
    await vfs.release(fh)
    await vfs.drain()
    assert renv.tree.get("f") == content
    assert storage.states() == [("f", "aborted"), ("f", "committed")]
    assert storage.writers[1].sent == len(content)


async def test_streams_are_limited_to_transfers(renv: Env) -> None:
    storage = recording(renv)
    vfs = await renv.vfs(opts(write_back=3600.0, transfers=1))
    a, b = os.urandom(6 * MiB), os.urandom(6 * MiB)
    fa, _ = await vfs.create(ROOT_INODE, "a", CREATE)
    fb, _ = await vfs.create(ROOT_INODE, "b", CREATE)
    for pos in range(0, 6 * MiB, MiB):
        await vfs.write(fa, pos, a[pos : pos + MiB])
        await vfs.write(fb, pos, b[pos : pos + MiB])
        await asyncio.sleep(0)
    await eventually(lambda: storage.sent() == 6 * MiB)
    assert storage.states() == [("a", "open")]
    await vfs.release(fa)
    await vfs.release(fb)
    await vfs.drain()
    assert renv.tree.get("a") == a and renv.tree.get("b") == b
    assert sorted(storage.states()) == [("a", "committed"), ("b", "committed")]
    assert storage.sent() == 12 * MiB


async def test_an_append_after_reopening_continues_the_stream(renv: Env) -> None:
    storage = recording(renv)
    vfs = await renv.vfs(opts(write_back=3600.0))
    content = os.urandom(9 * MiB)
    fh, _ = await vfs.create(ROOT_INODE, "f", CREATE)
    await write_in_sequence(vfs, fh, content[: 8 * MiB])
    await vfs.release(fh)
    fh = await vfs.open(await inode(vfs, "f"), WO | os.O_APPEND)
    await vfs.write(fh, 0, content[8 * MiB :])
    await vfs.release(fh)
    # Setting the time is no change of content (tar does it after writing).
    await vfs.setattr(await inode(vfs, "f"), mtime=1_500_000_000.0)
    await vfs.drain()
    assert renv.tree.get("f") == content
    assert renv.tree.files["f"].mtime == 1_500_000_000.0
    assert storage.states() == [("f", "committed")] and storage.sent() == len(content)


async def test_stop_aborts_streams_and_keeps_the_data_for_the_next_start(renv: Env) -> None:
    storage = recording(renv)
    first = await renv.vfs(opts(write_back=3600.0))
    content = os.urandom(8 * MiB)
    fh, _ = await first.create(ROOT_INODE, "f", CREATE)
    await write_in_sequence(first, fh, content)
    await first.flush(fh)
    await eventually(lambda: storage.sent() == len(content))
    await first.stop()  # a worker going away before the upload
    assert storage.states() == [("f", "aborted")] and not renv.tree.files
    second = await renv.vfs(opts(write_back=3600.0))
    await eventually(lambda: "f" in renv.tree.files and second.pending_uploads() == 0)
    assert renv.tree.get("f") == content
