"""The VFS in cache mode off, against the in-memory storage (no FUSE)."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from dataclasses import replace

import pytest

from application.vfs import ROOT_INODE, Vfs
from domain.errors import OptionError, RemoteUnavailable
from domain.remote_entry import RemoteEntry
from domain.volume import CacheMode, VfsOptions
from tests.fakes.storage import MemoryStorage, MemoryTree
from tests.unit.application.errnos import errno_of

pytestmark = pytest.mark.anyio

OPTS = VfsOptions(dir_cache_time=60.0, write_wait=0.05)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStorage(MemoryStorage):
    """Counts listings, to prove which answers came from the directory cache."""

    def __init__(self, tree: MemoryTree | None = None) -> None:
        super().__init__(tree)
        self.listings = 0

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        self.listings += 1
        return await super().list_dir(path)


def make(
    options: VfsOptions = OPTS, tree: MemoryTree | None = None
) -> tuple[Vfs, CountingStorage, Clock]:
    storage = CountingStorage(tree)
    clock = Clock()
    return Vfs(storage, options, clock), storage, clock


async def write_file(vfs: Vfs, name: str, data: bytes, parent: int = ROOT_INODE) -> None:
    fh, _ = await vfs.create(parent, name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    await vfs.write(fh, 0, data)
    await vfs.flush(fh)
    await vfs.release(fh)


async def read_all(vfs: Vfs, inode: int, piece: int = 128 * 1024) -> bytes:
    fh = await vfs.open(inode, os.O_RDONLY)
    out = bytearray()
    while True:
        data = await vfs.read(fh, len(out), piece)
        if not data:
            break
        out += data
    await vfs.release(fh)
    return bytes(out)


# ----- directory cache ----------------------------------------------------------------


async def test_listing_is_served_from_cache_until_dir_cache_time() -> None:
    vfs, storage, clock = make()
    storage.tree.put("a.txt", b"a")
    assert (await vfs.lookup(ROOT_INODE, "a.txt")).size == 1
    storage.tree.put("b.txt", b"bb")  # behind the VFS's back

    clock.now += 59
    assert await errno_of(vfs.lookup(ROOT_INODE, "b.txt")) == errno.ENOENT
    assert storage.listings == 1

    clock.now += 2  # past dir_cache_time
    assert (await vfs.lookup(ROOT_INODE, "b.txt")).size == 2
    assert storage.listings == 2


async def test_forget_all_drops_listings_but_keeps_inodes() -> None:
    vfs, storage, _ = make()
    storage.tree.put("d/a.txt", b"a")
    d = await vfs.lookup(ROOT_INODE, "d")
    a = await vfs.lookup(d.inode, "a.txt")
    storage.tree.put("d/new.txt", b"n")
    assert await errno_of(vfs.lookup(d.inode, "new.txt")) == errno.ENOENT

    vfs.forget_all()
    assert (await vfs.lookup(d.inode, "new.txt")).size == 1
    assert (await vfs.lookup(d.inode, "a.txt")).inode == a.inode
    assert (await vfs.lookup(ROOT_INODE, "d")).inode == d.inode
    assert a.inode != d.inode != ROOT_INODE


async def test_changes_through_the_vfs_update_the_cache_without_relisting() -> None:
    vfs, storage, _ = make()
    storage.tree.put("old.txt", b"x")
    storage.tree.put("gone.txt", b"y")
    storage.tree.put("dir/inner.txt", b"z")
    old = await vfs.lookup(ROOT_INODE, "old.txt")
    d = await vfs.lookup(ROOT_INODE, "dir")
    inner = await vfs.lookup(d.inode, "inner.txt")
    listings = storage.listings

    await vfs.rename(ROOT_INODE, "old.txt", ROOT_INODE, "new.txt")
    await vfs.unlink(ROOT_INODE, "gone.txt")
    sub = await vfs.mkdir(ROOT_INODE, "sub")
    await write_file(vfs, "made.txt", b"made")
    await vfs.rename(ROOT_INODE, "dir", sub.inode, "moved")

    assert (await vfs.lookup(ROOT_INODE, "new.txt")).inode == old.inode
    assert await errno_of(vfs.lookup(ROOT_INODE, "old.txt")) == errno.ENOENT
    assert await errno_of(vfs.lookup(ROOT_INODE, "gone.txt")) == errno.ENOENT
    assert await errno_of(vfs.lookup(ROOT_INODE, "dir")) == errno.ENOENT
    assert (await vfs.lookup(ROOT_INODE, "made.txt")).size == 4
    assert (await vfs.resolve("sub/moved/inner.txt")).inode == inner.inode
    assert storage.listings == listings  # every answer came from the patched cache
    assert set(storage.tree.files) == {"new.txt", "made.txt", "sub/moved/inner.txt"}
    assert storage.tree.get("sub/moved/inner.txt") == b"z"


async def test_rename_replaces_an_existing_file() -> None:
    vfs, storage, _ = make()
    storage.tree.put("a", b"AAA")
    storage.tree.put("b", b"B")
    a = await vfs.lookup(ROOT_INODE, "a")
    await vfs.rename(ROOT_INODE, "a", ROOT_INODE, "b")
    got = await vfs.lookup(ROOT_INODE, "b")
    assert (got.inode, got.size) == (a.inode, 3)
    assert storage.tree.get("b") == b"AAA"
    assert "a" not in storage.tree.files


async def test_rename_noreplace_and_dir_over_file() -> None:
    vfs, storage, _ = make()
    storage.tree.put("a", b"A")
    storage.tree.put("b", b"B")
    storage.tree.put("d/x", b"X")
    assert await errno_of(vfs.rename(ROOT_INODE, "a", ROOT_INODE, "b", no_replace=True)) == (
        errno.EEXIST
    )
    assert await errno_of(vfs.rename(ROOT_INODE, "d", ROOT_INODE, "a")) == errno.ENOTDIR
    assert await errno_of(vfs.rename(ROOT_INODE, "a", ROOT_INODE, "d")) == errno.EISDIR


async def test_readdir_offsets_are_stable_within_a_handle() -> None:
    vfs, storage, _ = make()
    for name in ("a", "b", "c", "d"):
        storage.tree.put(name, name.encode())
    fh = await vfs.opendir(ROOT_INODE)
    first = await vfs.readdir(fh, 0)
    await write_file(vfs, "e", b"e")  # must not shift the open listing
    rest = await vfs.readdir(fh, 2)
    await vfs.releasedir(fh)
    assert [n for n, _ in first] == ["a", "b", "c", "d"]
    assert [n for n, _ in rest] == ["c", "d"]
    fh = await vfs.opendir(ROOT_INODE)
    assert [n for n, _ in await vfs.readdir(fh, 0)] == ["a", "b", "c", "d", "e"]


async def test_rmdir_and_mkdir_errors() -> None:
    vfs, storage, _ = make()
    storage.tree.put("full/x", b"x")
    assert await errno_of(vfs.mkdir(ROOT_INODE, "full")) == errno.EEXIST
    assert await errno_of(vfs.rmdir(ROOT_INODE, "full")) == errno.ENOTEMPTY
    d = await vfs.mkdir(ROOT_INODE, "empty")
    assert d.is_dir
    await vfs.rmdir(ROOT_INODE, "empty")
    assert "empty" not in storage.tree.dirs
    assert await errno_of(vfs.lookup(ROOT_INODE, "empty")) == errno.ENOENT


# ----- attributes ---------------------------------------------------------------------


async def test_modes_follow_perms_and_umask() -> None:
    opts = replace(OPTS, umask=0o027, uid=1234, gid=4321, file_perms=0o666, dir_perms=0o777)
    vfs, storage, _ = make(opts)
    storage.tree.put("d/f", b"12345")
    d = await vfs.lookup(ROOT_INODE, "d")
    f = await vfs.lookup(d.inode, "f")
    assert d.mode == stat.S_IFDIR | 0o750
    assert f.mode == stat.S_IFREG | 0o640
    assert (f.uid, f.gid, f.size, f.blocks, f.nlink) == (1234, 4321, 5, 1, 1)
    assert f.mtime == storage.tree.files["d/f"].mtime


async def test_setattr_mtime_reaches_the_remote_unless_no_modtime() -> None:
    vfs, storage, _ = make()
    storage.tree.put("f", b"x")
    f = await vfs.lookup(ROOT_INODE, "f")
    assert (await vfs.setattr(f.inode, mtime=1_600_000_000.0)).mtime == 1_600_000_000.0
    assert storage.tree.files["f"].mtime == 1_600_000_000.0

    vfs2, storage2, _ = make(replace(OPTS, no_modtime=True))
    storage2.tree.put("f", b"x")
    before = storage2.tree.files["f"].mtime
    f2 = await vfs2.lookup(ROOT_INODE, "f")
    await vfs2.setattr(f2.inode, mtime=1_600_000_000.0)
    assert storage2.tree.files["f"].mtime == before


async def test_chmod_is_accepted_and_ignored() -> None:
    vfs, storage, _ = make()
    storage.tree.put("f", b"x")
    f = await vfs.lookup(ROOT_INODE, "f")
    assert (await vfs.setattr(f.inode, mode_change=True)).mode == f.mode


async def test_statfs_uses_disk_space_total_size() -> None:
    vfs, _, _ = make(replace(OPTS, disk_space_total_size=8 * 2**30))
    st = vfs.statfs()
    assert st.blocks * st.block_size == 8 * 2**30
    default = make()[0].statfs()
    assert default.blocks * default.block_size == 2**50


# ----- files: open rules (cache mode off) ---------------------------------------------


async def test_sequential_write_then_read_back() -> None:
    vfs, storage, _ = make()
    data = os.urandom(3 * 1024 * 1024 + 17)
    fh, attr = await vfs.create(ROOT_INODE, "big", os.O_WRONLY | os.O_CREAT)
    step = 128 * 1024
    for off in range(0, len(data), step):
        assert await vfs.write(fh, off, data[off : off + step]) == len(data[off : off + step])
    assert (await vfs.getattr(attr.inode)).size == len(data)  # size grows while writing
    assert "big" not in storage.tree.files  # committed at close, not before
    await vfs.flush(fh)
    await vfs.release(fh)
    assert storage.tree.get("big") == data
    assert await read_all(vfs, attr.inode) == data


async def test_created_file_is_visible_at_once_and_empty_on_remote_after_release() -> None:
    vfs, storage, clock = make()
    fh, attr = await vfs.create(ROOT_INODE, "touched", os.O_WRONLY | os.O_CREAT)
    clock.now += 3600  # even a relisting keeps the file being written
    assert (await vfs.lookup(ROOT_INODE, "touched")).inode == attr.inode
    await vfs.flush(fh)
    await vfs.release(fh)
    assert storage.tree.get("touched") == b""


async def test_close_is_the_commit_point_and_later_writes_are_ebadf() -> None:
    vfs, storage, _ = make()
    fh, attr = await vfs.create(ROOT_INODE, "f", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    await vfs.write(fh, 0, b"data")
    await vfs.flush(fh)  # close(2): the kernel's release comes later
    assert storage.tree.get("f") == b"data"
    # A dup'ed descriptor after that close: the upload is done, like rclone's ECLOSED.
    assert await errno_of(vfs.write(fh, 4, b"more")) == errno.EBADF
    await vfs.flush(fh)
    await vfs.release(fh)
    assert storage.tree.get("f") == b"data"
    assert (await vfs.getattr(attr.inode)).size == 4


async def test_an_unwritten_truncating_open_commits_the_empty_file_at_flush() -> None:
    vfs, storage, _ = make()
    storage.tree.put("a", b"old")
    storage.tree.put("c", b"1024" * 256)
    a = await vfs.lookup(ROOT_INODE, "a")
    # `: > a`, then `mv c a` before the kernel's release of the first open.
    fh = await vfs.open(a.inode, os.O_WRONLY | os.O_TRUNC)
    await vfs.flush(fh)
    assert storage.tree.get("a") == b""
    await vfs.rename(ROOT_INODE, "c", ROOT_INODE, "a")
    await vfs.release(fh)
    assert storage.tree.get("a") == b"1024" * 256
    assert set(storage.tree.files) == {"a"}

    # A shell's `> b` flushes (closes the original descriptor) before it writes
    # through the dup'ed one: those writes replace the empty file.
    fh, attr = await vfs.create(ROOT_INODE, "b", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    await vfs.flush(fh)
    assert storage.tree.get("b") == b""
    await vfs.write(fh, 0, b"hello\n")
    await vfs.flush(fh)
    assert storage.tree.get("b") == b"hello\n"
    await vfs.release(fh)
    assert (await vfs.getattr(attr.inode)).size == 6


class GatedStorage(CountingStorage):
    """Commits wait for `gate`: an upload caught between close and commit."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def open_writer(self, path: str):  # type: ignore[no-untyped-def]
        writer = await super().open_writer(path)
        commit = writer.commit

        async def gated() -> None:
            await self.gate.wait()
            await commit()

        writer.commit = gated  # type: ignore[method-assign]
        return writer


async def test_opens_lookups_and_renames_wait_for_a_commit_in_progress() -> None:
    storage = GatedStorage()
    storage.tree.put("c", b"from c")
    vfs = Vfs(storage, OPTS, Clock())
    fh, attr = await vfs.create(ROOT_INODE, "a", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    await vfs.write(fh, 0, b"from a")
    flush = asyncio.ensure_future(vfs.flush(fh))
    await asyncio.sleep(0.01)
    assert not flush.done()  # close() has not returned: the commit is running
    opened = asyncio.ensure_future(vfs.open(attr.inode, os.O_RDONLY))
    looked = asyncio.ensure_future(vfs.lookup(ROOT_INODE, "a"))
    await asyncio.sleep(0.01)
    assert not opened.done() and not looked.done()
    storage.gate.set()
    await flush
    assert (await looked).size == 6
    rfh = await opened
    assert await vfs.read(rfh, 0, 100) == b"from a"
    await vfs.release(rfh)
    await vfs.release(fh)

    # A rename onto a name being committed waits, so the commit can't land after it.
    storage.gate.clear()
    fh = await vfs.open(attr.inode, os.O_WRONLY | os.O_TRUNC)
    flush = asyncio.ensure_future(vfs.flush(fh))
    await asyncio.sleep(0.01)
    renamed = asyncio.ensure_future(vfs.rename(ROOT_INODE, "c", ROOT_INODE, "a"))
    await asyncio.sleep(0.01)
    assert not renamed.done()
    storage.gate.set()
    await flush
    await renamed
    await vfs.release(fh)
    assert storage.tree.get("a") == b"from c"
    assert set(storage.tree.files) == {"a"}


async def test_out_of_order_write_is_refused_with_espipe() -> None:
    vfs, storage, _ = make()
    fh, _ = await vfs.create(ROOT_INODE, "f", os.O_WRONLY | os.O_CREAT)
    await vfs.write(fh, 0, b"abc")
    assert await errno_of(vfs.write(fh, 10, b"x")) == errno.ESPIPE
    await vfs.write(fh, 3, b"def")
    await vfs.release(fh)
    assert storage.tree.get("f") == b"abcdef"


async def test_existing_file_needs_o_trunc_for_writing() -> None:
    vfs, storage, _ = make()
    storage.tree.put("f", b"keep")
    f = await vfs.lookup(ROOT_INODE, "f")
    fh = await vfs.open(f.inode, os.O_WRONLY | os.O_APPEND)
    assert await errno_of(vfs.write(fh, 4, b"more")) == errno.EPERM
    assert await errno_of(vfs.flush(fh)) == errno.EPERM
    await vfs.release(fh)
    assert storage.tree.get("f") == b"keep"

    fh = await vfs.open(f.inode, os.O_WRONLY | os.O_TRUNC)
    await vfs.write(fh, 0, b"new")
    await vfs.release(fh)
    assert storage.tree.get("f") == b"new"


async def test_ftruncate_to_zero_allows_writing_an_existing_file() -> None:
    vfs, storage, _ = make()
    storage.tree.put("f", b"old content")
    f = await vfs.lookup(ROOT_INODE, "f")
    fh = await vfs.open(f.inode, os.O_WRONLY)
    await vfs.setattr(f.inode, size=0, fh=fh)
    await vfs.write(fh, 0, b"x")
    await vfs.release(fh)
    assert storage.tree.get("f") == b"x"


async def test_read_write_open_is_write_only() -> None:
    vfs, storage, _ = make()
    fh, _ = await vfs.create(ROOT_INODE, "rw", os.O_RDWR | os.O_CREAT)
    await vfs.write(fh, 0, b"data")
    assert await errno_of(vfs.read(fh, 0, 4)) == errno.EPERM
    await vfs.release(fh)
    assert storage.tree.get("rw") == b"data"


async def test_read_only_with_o_trunc_is_einval() -> None:
    vfs, storage, _ = make()
    storage.tree.put("f", b"x")
    f = await vfs.lookup(ROOT_INODE, "f")
    assert await errno_of(vfs.open(f.inode, os.O_RDONLY | os.O_TRUNC)) == errno.EINVAL
    assert storage.tree.get("f") == b"x"


async def test_truncate_rules() -> None:
    vfs, storage, _ = make()
    storage.tree.put("f", b"12345")
    f = await vfs.lookup(ROOT_INODE, "f")
    assert await errno_of(vfs.setattr(f.inode, size=2)) == errno.EPERM
    assert (await vfs.setattr(f.inode, size=5)).size == 5  # already that size
    assert (await vfs.setattr(f.inode, size=0)).size == 0
    assert storage.tree.get("f") == b""


async def test_read_only_refuses_every_change_with_erofs() -> None:
    vfs, storage, _ = make(replace(OPTS, read_only=True))
    storage.tree.put("f", b"x")
    storage.tree.put("d/y", b"y")
    f = await vfs.lookup(ROOT_INODE, "f")
    wr = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for attempt in (
        vfs.create(ROOT_INODE, "new", wr),
        vfs.open(f.inode, os.O_WRONLY | os.O_TRUNC),
        vfs.open(f.inode, os.O_RDWR),
        vfs.mkdir(ROOT_INODE, "nd"),
        vfs.rmdir(ROOT_INODE, "d"),
        vfs.unlink(ROOT_INODE, "f"),
        vfs.rename(ROOT_INODE, "f", ROOT_INODE, "g"),
        vfs.setattr(f.inode, size=0),
        vfs.setattr(f.inode, mtime=1.0),
    ):
        assert await errno_of(attempt) == errno.EROFS
    assert await read_all(vfs, f.inode) == b"x"
    assert set(storage.tree.files) == {"f", "d/y"}


async def test_seek_and_read_and_readahead_uses_few_requests() -> None:
    vfs, storage, _ = make()
    data = os.urandom(10 * 1024 * 1024)
    storage.tree.put("big", data)
    f = await vfs.lookup(ROOT_INODE, "big")
    assert await read_all(vfs, f.inode) == data
    reads = [c for c in storage.tree.calls if c.startswith("read big")]
    assert len(reads) <= 8, reads  # 80 kernel-sized reads, a handful of remote ones

    fh = await vfs.open(f.inode, os.O_RDONLY)
    assert await vfs.read(fh, 7_000_000, 1000) == data[7_000_000:7_001000]
    assert await vfs.read(fh, 123, 4096) == data[123 : 123 + 4096]
    assert await vfs.read(fh, len(data) - 10, 4096) == data[-10:]
    assert await vfs.read(fh, len(data) + 5, 4096) == b""
    await vfs.release(fh)


async def test_no_seek_refuses_a_seek() -> None:
    vfs, storage, _ = make(replace(OPTS, no_seek=True))
    storage.tree.put("f", os.urandom(8 * 1024 * 1024))
    f = await vfs.lookup(ROOT_INODE, "f")
    fh = await vfs.open(f.inode, os.O_RDONLY)
    await vfs.read(fh, 0, 4096)
    await vfs.read(fh, 4096, 4096)
    assert await errno_of(vfs.read(fh, 7 * 1024 * 1024, 10)) == errno.ESPIPE
    await vfs.release(fh)


# ----- failures -----------------------------------------------------------------------


class FailingCommitStorage(CountingStorage):
    async def open_writer(self, path: str):  # type: ignore[no-untyped-def]
        writer = await super().open_writer(path)

        async def commit() -> None:
            raise RemoteUnavailable("connection lost (fake)")

        writer.commit = commit  # type: ignore[method-assign]
        return writer


async def test_failed_commit_is_an_eio_at_flush_and_the_new_file_goes() -> None:
    storage = FailingCommitStorage()
    vfs = Vfs(storage, OPTS, Clock())
    fh, _ = await vfs.create(ROOT_INODE, "f", os.O_WRONLY | os.O_CREAT)
    await vfs.write(fh, 0, b"data")
    assert await errno_of(vfs.flush(fh)) == errno.EIO
    await vfs.release(fh)
    assert "f" not in storage.tree.files
    assert await errno_of(vfs.lookup(ROOT_INODE, "f")) == errno.ENOENT


async def test_unreachable_remote_is_eio_and_storage_errnos_pass_through() -> None:
    vfs, storage, _ = make()
    storage.tree.put("f", b"x")
    assert await errno_of(vfs.rmdir(ROOT_INODE, "f")) == errno.ENOTDIR
    storage.tree.reachable = False
    vfs.forget_all()
    assert await errno_of(vfs.lookup(ROOT_INODE, "f")) == errno.EIO


async def test_cache_modes_need_a_cache_store() -> None:
    with pytest.raises(OptionError, match="writes needs a cache directory"):
        Vfs(MemoryStorage(), replace(OPTS, cache_mode=CacheMode.WRITES))
