"""The VFS behind a real FUSE mount (cache mode off), over a local directory."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.fixtures.fuse_mount import Mounted, MountFactory, fuse_mount, is_mounted

__all__ = ["fuse_mount"]  # the fixture, imported for pytest


def sh(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def errno_of(fn: object, *args: object) -> int:
    try:
        fn(*args)  # type: ignore[operator]
    except OSError as exc:
        return exc.errno or -1
    raise AssertionError("no error raised")


@pytest.fixture
def mounted(fuse_mount: MountFactory) -> Mounted:
    return fuse_mount()


def test_echo_cat_ls_and_backing_directory(mounted: Mounted) -> None:
    mp, backing = mounted.mountpoint, mounted.backing
    assert sh("echo hello > greeting.txt", mp).returncode == 0
    assert (backing / "greeting.txt").read_bytes() == b"hello\n"
    assert sh("cat greeting.txt", mp).stdout == "hello\n"
    listing = sh("ls -l", mp).stdout
    sizes = {line.split()[-1]: int(line.split()[4]) for line in listing.splitlines()[1:]}
    assert sizes["greeting.txt"] == 6
    assert os.stat(mp / "greeting.txt").st_size == 6


def test_mkdir_rmdir_rm_and_mv(mounted: Mounted) -> None:
    mp, backing = mounted.mountpoint, mounted.backing
    (mp / "dir").mkdir()
    assert (backing / "dir").is_dir()
    (mp / "dir" / "f").write_bytes(b"data")
    assert errno_of(os.rmdir, mp / "dir") == errno.ENOTEMPTY

    os.rename(mp / "dir" / "f", mp / "dir" / "g")
    assert (backing / "dir" / "g").read_bytes() == b"data"
    assert not (backing / "dir" / "f").exists()
    assert sorted(os.listdir(mp / "dir")) == ["g"]

    os.rename(mp / "dir", mp / "moved")
    assert (mp / "moved" / "g").read_bytes() == b"data"
    assert (backing / "moved" / "g").read_bytes() == b"data"
    assert not (mp / "dir").exists()

    (mp / "other").write_bytes(b"replacement")
    os.rename(mp / "other", mp / "moved" / "g")  # replaces a file
    assert (backing / "moved" / "g").read_bytes() == b"replacement"

    os.unlink(mp / "moved" / "g")
    assert not (backing / "moved" / "g").exists()
    os.rmdir(mp / "moved")
    assert not (backing / "moved").exists()
    assert os.listdir(mp) == []


def test_twenty_mib_with_dd_and_cmp(mounted: Mounted, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(20 * 1024 * 1024))
    mp = mounted.mountpoint
    result = sh(f"dd if={source} of=big.bin bs=1M status=none", mp)
    assert result.returncode == 0, result.stderr
    assert os.stat(mp / "big.bin").st_size == 20 * 1024 * 1024
    assert sh(f"cmp {source} big.bin", mp).returncode == 0
    assert sh(f"cmp {source} {mounted.backing / 'big.bin'}", mp).returncode == 0


def test_seek_and_read(mounted: Mounted) -> None:
    data = os.urandom(6 * 1024 * 1024 + 3)
    (mounted.backing / "r.bin").write_bytes(data)
    with open(mounted.mountpoint / "r.bin", "rb", buffering=0) as f:
        f.seek(5_000_000)
        assert f.read(1000) == data[5_000_000:5_001_000]
        f.seek(10)
        assert f.read(100) == data[10:110]
        f.seek(-5, os.SEEK_END)
        assert f.read() == data[-5:]


def test_read_write_open_cannot_read(mounted: Mounted) -> None:
    # rclone's rule for cache mode off: O_RDWR opens write-only; reads get EPERM.
    path = mounted.mountpoint / "rw.txt"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        assert os.write(fd, b"abc") == 3
        os.lseek(fd, 0, os.SEEK_SET)
        assert errno_of(os.read, fd, 3) == errno.EPERM
    finally:
        os.close(fd)
    assert (mounted.backing / "rw.txt").read_bytes() == b"abc"


def test_existing_file_needs_o_trunc(mounted: Mounted) -> None:
    (mounted.backing / "keep.txt").write_bytes(b"keep")
    path = mounted.mountpoint / "keep.txt"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        assert errno_of(os.write, fd, b"more") == errno.EPERM
    finally:
        assert errno_of(os.close, fd) == errno.EPERM  # flush reports it again, like rclone
    assert (mounted.backing / "keep.txt").read_bytes() == b"keep"
    assert sh("echo more >> keep.txt", mounted.mountpoint).returncode != 0

    path.write_bytes(b"new")  # O_WRONLY|O_CREAT|O_TRUNC is fine
    assert (mounted.backing / "keep.txt").read_bytes() == b"new"


def test_out_of_order_write_is_espipe(mounted: Mounted) -> None:
    fd = os.open(mounted.mountpoint / "seq.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(fd, b"a" * 10)
        assert errno_of(os.pwrite, fd, b"b", 1000) == errno.ESPIPE
    finally:
        os.close(fd)
    assert (mounted.backing / "seq.bin").read_bytes() == b"a" * 10


def test_df_works(mounted: Mounted) -> None:
    result = sh(f"df -k {mounted.mountpoint}", mounted.mountpoint)
    assert result.returncode == 0, result.stderr
    total_kib = int(result.stdout.splitlines()[1].split()[1])
    assert total_kib == 2**50 // 1024
    st = os.statvfs(mounted.mountpoint)
    assert st.f_namemax == 255


def test_read_only_mount_refuses_writes(fuse_mount: MountFactory) -> None:
    m = fuse_mount("--read-only")
    (m.backing / "f").write_bytes(b"ro")
    (m.backing / "d").mkdir()
    mp = m.mountpoint
    assert (mp / "f").read_bytes() == b"ro"
    assert errno_of(os.open, mp / "new", os.O_WRONLY | os.O_CREAT) == errno.EROFS
    assert errno_of(os.open, mp / "f", os.O_WRONLY | os.O_TRUNC) == errno.EROFS
    assert errno_of(os.mkdir, mp / "nd") == errno.EROFS
    assert errno_of(os.unlink, mp / "f") == errno.EROFS
    assert errno_of(os.rmdir, mp / "d") == errno.EROFS
    assert errno_of(os.rename, mp / "f", mp / "g") == errno.EROFS
    assert errno_of(os.utime, mp / "f", (1, 1)) == errno.EROFS
    assert sorted(os.listdir(m.backing)) == ["d", "f"]


def test_refuses_a_non_empty_mountpoint_unless_allowed(tmp_path: Path) -> None:
    from tests.integration.fixtures.fuse_mount import _start

    mp, backing = tmp_path / "busy", tmp_path / "b"
    mp.mkdir()
    backing.mkdir()
    (mp / "already-here").write_text("x")
    with pytest.raises(RuntimeError, match="not become ready"):
        _start(mp, backing, [], timeout=10)
    assert not is_mounted(mp)
    m = _start(mp, backing, ["--allow-non-empty"])
    try:
        assert os.listdir(mp) == []  # the mount hides what was there
    finally:
        m.unmount()
    assert os.listdir(mp) == ["already-here"]


def test_changes_behind_the_back_show_after_dir_cache_time(fuse_mount: MountFactory) -> None:
    import time

    # Long enough that the second listing, made at once, is surely within it even
    # on a loaded machine; the wait below is what shows the time is honoured.
    dir_cache_time = 10.0
    m = fuse_mount("--dir-cache-time", str(dir_cache_time))
    listed_at = time.monotonic()
    assert os.listdir(m.mountpoint) == []
    (m.backing / "behind.bin").write_bytes(b"x" * 12345)
    assert os.listdir(m.mountpoint) == []  # served from the directory cache
    deadline = listed_at + dir_cache_time + 20
    while os.listdir(m.mountpoint) != ["behind.bin"]:
        assert time.monotonic() < deadline, "the listing was never read again"
        time.sleep(0.1)
    # Not before the cached listing (made after `listed_at`) had expired.
    assert time.monotonic() - listed_at >= dir_cache_time
    assert os.stat(m.mountpoint / "behind.bin").st_size == 12345


def test_external_unmount_ends_the_worker(mounted: Mounted) -> None:
    subprocess.run(["fusermount3", "-u", str(mounted.mountpoint)], check=True)
    assert mounted.process.wait(timeout=15) == 0
    assert not is_mounted(mounted.mountpoint)


def test_cancelling_the_server_unmounts(mounted: Mounted) -> None:
    import signal

    (mounted.mountpoint / "f").write_bytes(b"x")
    mounted.process.send_signal(signal.SIGTERM)  # the runner cancels run_fuse
    assert mounted.process.wait(timeout=15) == 0
    assert not is_mounted(mounted.mountpoint)
    assert (mounted.backing / "f").read_bytes() == b"x"
