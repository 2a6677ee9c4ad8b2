"""Symlinks (--links), hard links and --metadata in the VFS, against the
in-memory storage, in cache modes off and writes."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.cache import DiskCacheStore
from application.vfs import ROOT_INODE, Vfs
from domain.metadata import FileMetadata
from domain.remote_entry import RemoteEntry
from domain.volume import CacheMode, VfsOptions
from tests.fakes.storage import MemoryStorage, MemoryTree
from tests.unit.application.errnos import errno_of

pytestmark = pytest.mark.anyio

CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
BASE = VfsOptions(dir_cache_time=60.0, write_back=30.0, uid=1000, gid=1000, umask=0o022)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.storage = MemoryStorage()
        self.tree: MemoryTree = self.storage.tree
        self.vfss: list[Vfs] = []

    async def vfs(self, mode: CacheMode = CacheMode.OFF, **kw: object) -> Vfs:
        options = replace(BASE, cache_mode=mode, **kw)  # type: ignore[arg-type]
        store = DiskCacheStore(str(self.tmp / "cache")) if mode is not CacheMode.OFF else None
        vfs = Vfs(self.storage, options, cache_store=store, upload_retry_base=0.02)
        await vfs.start()
        self.vfss.append(vfs)
        return vfs


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path)
    yield e
    for vfs in e.vfss:
        await vfs.stop()


async def write_new(vfs: Vfs, name: str, data: bytes, *, mode: int = 0o644) -> int:
    fh, attr = await vfs.create(ROOT_INODE, name, CREATE, mode=mode, uid=7, gid=8)
    await vfs.write(fh, 0, data)
    await vfs.flush(fh)
    await vfs.release(fh)
    return attr.inode


MODES = [CacheMode.OFF, CacheMode.WRITES]

# ----- symlinks -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_symlink_is_a_rclonelink_file_and_reads_back(env: Env, mode: CacheMode) -> None:
    vfs = await env.vfs(mode, links=True)
    attr = await vfs.symlink(ROOT_INODE, "ln", "../some/target")
    assert stat.S_ISLNK(attr.mode) and attr.is_link
    assert stat.S_IMODE(attr.mode) == 0o777  # --link-perms, not through the umask
    assert attr.size == len("../some/target")
    assert env.tree.get("ln.rclonelink") == b"../some/target"
    assert await vfs.readlink(attr.inode) == "../some/target"
    # A fresh mount lists it as a link without the suffix, and reads the file.
    other = await env.vfs(mode, links=True)
    looked = await other.lookup(ROOT_INODE, "ln")
    assert looked.is_link
    assert await other.readlink(looked.inode) == "../some/target"
    fh = await other.opendir(ROOT_INODE)
    assert [name for name, _ in await other.readdir(fh, 0)] == ["ln"]
    assert await errno_of(other.lookup(ROOT_INODE, "ln.rclonelink")) == errno.ENOENT


async def test_without_links_symlink_is_enosys_and_link_files_are_plain(env: Env) -> None:
    env.tree.put("x.rclonelink", b"target")
    vfs = await env.vfs()
    assert await errno_of(vfs.symlink(ROOT_INODE, "ln", "t")) == errno.ENOSYS
    attr = await vfs.lookup(ROOT_INODE, "x.rclonelink")
    assert stat.S_ISREG(attr.mode)
    assert "ln.rclonelink" not in env.tree.files


async def test_rename_and_unlink_of_links_and_dangling_link(env: Env) -> None:
    vfs = await env.vfs(links=True)
    await vfs.symlink(ROOT_INODE, "a", "nowhere")  # dangling: fine
    await vfs.rename(ROOT_INODE, "a", ROOT_INODE, "b")
    assert set(env.tree.files) == {"b.rclonelink"}
    await write_new(vfs, "file", b"data")
    # A link renamed over a file replaces it, though they are stored apart.
    await vfs.rename(ROOT_INODE, "b", ROOT_INODE, "file")
    assert set(env.tree.files) == {"file.rclonelink"}
    assert (await vfs.lookup(ROOT_INODE, "file")).is_link
    await vfs.unlink(ROOT_INODE, "file")
    assert env.tree.files == {}
    assert await errno_of(vfs.lookup(ROOT_INODE, "file")) == errno.ENOENT


async def test_symlink_over_existing_name_is_eexist(env: Env) -> None:
    vfs = await env.vfs(links=True)
    await write_new(vfs, "f", b"x")
    assert await errno_of(vfs.symlink(ROOT_INODE, "f", "t")) == errno.EEXIST


async def test_a_real_file_hides_a_link_of_the_same_name(env: Env) -> None:
    env.tree.put("n", b"real")
    env.tree.put("n.rclonelink", b"target")
    vfs = await env.vfs(links=True)
    assert not (await vfs.lookup(ROOT_INODE, "n")).is_link


# ----- hard links -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_hard_link_on_a_remote_that_has_them(env: Env, mode: CacheMode) -> None:
    vfs = await env.vfs(mode)
    ino = await write_new(vfs, "f", b"shared")
    attr = await vfs.link(ino, ROOT_INODE, "g")
    assert attr.inode == ino and attr.nlink == 2
    assert env.tree.files["g"] is env.tree.files["f"]  # one file, two names
    assert (await vfs.getattr(ino)).nlink == 2
    # A fresh listing shows the remote's link count.
    other = await env.vfs(mode)
    assert (await other.lookup(ROOT_INODE, "g")).nlink == 2


async def test_hard_link_elsewhere_is_eperm(env: Env) -> None:
    env.tree.hard_links = False
    vfs = await env.vfs()
    ino = await write_new(vfs, "f", b"x")
    assert await errno_of(vfs.link(ino, ROOT_INODE, "g")) == errno.EPERM
    await vfs.mkdir(ROOT_INODE, "d")
    d = (await vfs.lookup(ROOT_INODE, "d")).inode
    env.tree.hard_links = True
    assert await errno_of(vfs.link(d, ROOT_INODE, "e")) == errno.EPERM


# ----- metadata -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_chmod_chown_and_times_are_kept_with_metadata(env: Env, mode: CacheMode) -> None:
    vfs = await env.vfs(mode, metadata=True)
    ino = await write_new(vfs, "f", b"data", mode=0o640)
    attr = await vfs.setattr(
        ino,
        mtime=-86400.0 * 365,  # 1969
        metadata=FileMetadata(mode=0o751, uid=42, gid=43, atime=4_102_444_800.5),  # 2100
    )
    assert (stat.S_IMODE(attr.mode), attr.uid, attr.gid) == (0o751, 42, 43)
    assert attr.atime == 4_102_444_800.5 and attr.mtime == -86400.0 * 365
    await vfs.drain()
    f = env.tree.files["f"]
    assert (f.meta.mode, f.meta.uid, f.meta.gid, f.meta.atime) == (0o751, 42, 43, 4_102_444_800.5)
    assert f.mtime == -86400.0 * 365
    other = await env.vfs(mode, metadata=True)
    seen = await other.lookup(ROOT_INODE, "f")
    assert (stat.S_IMODE(seen.mode), seen.uid, seen.gid) == (0o751, 42, 43)
    assert seen.atime == 4_102_444_800.5


async def test_a_new_file_takes_its_creators_mode_and_owner(env: Env) -> None:
    vfs = await env.vfs(CacheMode.WRITES, metadata=True)
    await write_new(vfs, "f", b"x", mode=0o600)
    await vfs.drain()
    assert (env.tree.files["f"].meta.mode, env.tree.files["f"].meta.uid) == (0o600, 7)


async def test_without_metadata_chmod_is_accepted_and_ignored(env: Env) -> None:
    vfs = await env.vfs()
    ino = await write_new(vfs, "f", b"x")
    attr = await vfs.setattr(ino, mode_change=True, metadata=FileMetadata(mode=0o700))
    assert (stat.S_IMODE(attr.mode), attr.uid) == (0o644, 1000)
    assert env.tree.files["f"].meta == FileMetadata()


# ----- names ----------------------------------------------------------------------------


async def test_names_longer_than_255_bytes(env: Env) -> None:
    vfs = await env.vfs(links=True)
    long = "x" * 256
    assert await errno_of(vfs.create(ROOT_INODE, long, CREATE)) == errno.ENAMETOOLONG
    assert await errno_of(vfs.mkdir(ROOT_INODE, long)) == errno.ENAMETOOLONG
    assert await errno_of(vfs.lookup(ROOT_INODE, long)) == errno.ENAMETOOLONG
    # The link's stored name would be too long even though its own is not.
    assert await errno_of(vfs.symlink(ROOT_INODE, "y" * 250, "t")) == errno.ENAMETOOLONG


@pytest.mark.parametrize("mode", MODES)
async def test_the_inode_of_a_hard_link_survives_its_first_name(env: Env, mode: CacheMode) -> None:
    # git moves objects into place this way: link(tmp, final), unlink(tmp).
    vfs = await env.vfs(mode)
    ino = await write_new(vfs, "tmp", b"object")
    await vfs.link(ino, ROOT_INODE, "final")
    await vfs.unlink(ROOT_INODE, "tmp")
    attr = await vfs.getattr(ino)
    assert attr.nlink == 1
    fh = await vfs.open(ino, os.O_RDONLY)
    assert await vfs.read(fh, 0, 100) == b"object"
    await vfs.release(fh)
    assert set(env.tree.files) == {"final"}


class ListingWithoutMetadata(MemoryStorage):
    """Like an object store: listings carry no metadata, a stat does."""

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        return [replace(e, metadata=None) for e in await super().list_dir(path)]


async def test_metadata_missing_from_listings_is_read_at_lookup(env: Env) -> None:
    storage = ListingWithoutMetadata(env.tree)
    env.tree.put("f", b"x")
    await storage.set_metadata("f", FileMetadata(mode=0o700, uid=5))
    vfs = Vfs(storage, replace(BASE, metadata=True))
    attr = await vfs.lookup(ROOT_INODE, "f")
    assert (stat.S_IMODE(attr.mode), attr.uid) == (0o700, 5)


async def test_metadata_extension_shows_a_virtual_json_file(env: Env) -> None:
    vfs = await env.vfs(metadata=True, metadata_extension=".metadata")
    ino = await write_new(vfs, "f", b"data", mode=0o640)
    await vfs.setattr(ino, mtime=1.5, metadata=FileMetadata(uid=3, gid=4))
    attr = await vfs.lookup(ROOT_INODE, "f.metadata")
    assert stat.S_IMODE(attr.mode) == 0o444 and not attr.is_link
    fh = await vfs.open(attr.inode, os.O_RDONLY)
    content = json.loads(await vfs.read(fh, 0, 4096))
    await vfs.release(fh)
    assert content == {
        "mode": "640", "uid": "3", "gid": "4",
        "atime": "1970-01-01T00:00:01.500000000Z", "mtime": "1970-01-01T00:00:01.500000000Z",
    }  # fmt: skip
    assert (await vfs.lookup(ROOT_INODE, "f.metadata")).inode == attr.inode
    assert await errno_of(vfs.open(attr.inode, os.O_WRONLY)) == errno.EACCES
    fh = await vfs.opendir(ROOT_INODE)
    assert [name for name, _ in await vfs.readdir(fh, 0)] == ["f"]  # not listed
    assert await errno_of(vfs.lookup(ROOT_INODE, "g.metadata")) == errno.ENOENT


async def test_directory_times_are_kept_with_metadata(env: Env) -> None:
    vfs = await env.vfs(metadata=True)
    attr = await vfs.mkdir(ROOT_INODE, "d", mode=0o750)
    await vfs.setattr(attr.inode, mtime=123.0)
    meta = (await env.storage.stat("d")).metadata
    assert meta is not None and (meta.mode, meta.mtime) == (0o750, 123.0)
