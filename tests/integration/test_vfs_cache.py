"""The VFS file cache behind real FUSE mounts over a local directory: each mode's
open rules through the kernel, sparse partial reads, write-back, and the mount
workers' promise never to strand data (drain at unmount, recovery after SIGKILL).

Blocking file and process calls in the async tests are deliberate: the FUSE
server is another process, so blocking here cannot deadlock it."""
# ruff: noqa: ASYNC240

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from adapters.mounting.manager import WorkerMountManager
from adapters.mounting.protocol import parse_mountinfo, worker_paths
from adapters.mounting.system import call_worker, is_mounted, is_stale, lock_holder
from domain.volume import BackendSpec, Volume, VolumeSpec
from tests.integration.fixtures.fuse_mount import Mounted, MountFactory, fuse_mount
from tests.integration.fixtures.polling import holds_within
from tests.integration.fixtures.processes import process_gone

__all__ = ["fuse_mount"]  # the fixture, imported for pytest

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def errno_of(fn: Callable[[], object]) -> int:
    try:
        fn()
    except OSError as exc:
        return exc.errno or -1
    raise AssertionError("no error raised")


def cached(fuse_mount: MountFactory, tmp_path: Path, mode: str, *opts: str) -> Mounted:
    args = ["--cache-dir", str(tmp_path / "cache"), "--opt", f"vfs-cache-mode={mode}"]
    # Files put into the backing directory behind the mount's back show at once.
    for opt in ("dir-cache-time=0", *opts):
        args += ["--opt", opt]
    return fuse_mount(*args)


# ----- open rules through the kernel --------------------------------------------------


def test_minimal_caches_read_write_opens_only(fuse_mount: MountFactory, tmp_path: Path) -> None:
    m = cached(fuse_mount, tmp_path, "minimal", "vfs-write-back=0")
    (m.backing / "f").write_bytes(b"0123456789")
    path = m.mountpoint / "f"
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, b"ab", 4)
        assert os.pread(fd, 10, 0) == b"0123ab6789"
    finally:
        os.close(fd)
    assert holds_within(lambda: (m.backing / "f").read_bytes() == b"0123ab6789")
    # Write-only without O_TRUNC on a file without a cache item: streamed, and
    # an existing file can't be rewritten that way.
    (m.backing / "g").write_bytes(b"keep")
    fd = os.open(m.mountpoint / "g", os.O_WRONLY)
    try:
        assert errno_of(lambda: os.write(fd, b"x")) == errno.EPERM
    finally:
        assert errno_of(lambda: os.close(fd)) == errno.EPERM  # as in mode off
    assert (m.backing / "g").read_bytes() == b"keep"
    assert not (tmp_path / "cache" / "vfs" / "vol" / "data" / "g").exists()


def test_writes_edits_in_place_and_streams_reads(fuse_mount: MountFactory, tmp_path: Path) -> None:
    # A write-back long enough that the "not yet" below holds on a loaded machine.
    m = cached(fuse_mount, tmp_path, "writes", "vfs-write-back=3")
    (m.backing / "f").write_bytes(b"hello world")
    assert (m.mountpoint / "f").read_bytes() == b"hello world"
    assert not (
        tmp_path / "cache" / "vfs" / "vol" / "data" / "f"
    ).exists()  # a read-only open: streamed
    fd = os.open(m.mountpoint / "f", os.O_WRONLY)
    try:
        os.pwrite(fd, b"W", 6)  # any offset, no O_TRUNC
    finally:
        os.close(fd)
    assert (m.mountpoint / "f").read_bytes() == b"hello World"
    assert (m.backing / "f").read_bytes() == b"hello world"  # not yet: write-back
    assert holds_within(lambda: (m.backing / "f").read_bytes() == b"hello World", timeout=30)
    with open(m.mountpoint / "f", "ab") as f:
        f.write(b"!")
    assert holds_within(lambda: (m.backing / "f").read_bytes() == b"hello World!", timeout=30)


def test_full_mode_partial_reads_leave_a_sparse_file(
    fuse_mount: MountFactory, tmp_path: Path
) -> None:
    m = cached(fuse_mount, tmp_path, "full")
    content = os.urandom(32 * MiB)
    (m.backing / "big").write_bytes(content)
    fd = os.open(m.mountpoint / "big", os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, 16 * MiB) == content[16 * MiB : 16 * MiB + 4096]
    finally:
        os.close(fd)
    data = tmp_path / "cache" / "vfs" / "vol" / "data" / "big"
    meta = tmp_path / "cache" / "vfs" / "vol" / "meta" / "big"
    assert data.stat().st_size == 32 * MiB
    assert data.stat().st_blocks * 512 < 2 * MiB  # holes everywhere else
    record = json.loads(meta.read_bytes())
    [[start, end]] = record["ranges"]
    assert start <= 16 * MiB and end >= 16 * MiB + 4096 and end - start < 8 * MiB
    assert record["dirty"] is False


def test_full_mode_serves_repeated_reads_from_disk(
    fuse_mount: MountFactory, tmp_path: Path
) -> None:
    m = cached(fuse_mount, tmp_path, "full", "vfs-fast-fingerprint=true")
    content = os.urandom(8 * MiB)
    (m.backing / "f").write_bytes(content)
    assert (m.mountpoint / "f").read_bytes() == content
    # Overwrite the remote behind the VFS's back with the same size and time:
    # only the cached copy can still give the old bytes.
    st = (m.backing / "f").stat()
    (m.backing / "f").write_bytes(b"\0" * len(content))
    os.utime(m.backing / "f", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (m.mountpoint / "f").read_bytes() == content


def test_read_only_refuses_writes(fuse_mount: MountFactory, tmp_path: Path) -> None:
    m = cached(fuse_mount, tmp_path, "full", "read-only=true")
    (m.backing / "f").write_bytes(b"x")
    assert errno_of(lambda: os.open(m.mountpoint / "f", os.O_RDWR)) == errno.EROFS
    assert errno_of(lambda: (m.mountpoint / "new").write_bytes(b"y")) == errno.EROFS
    assert (m.mountpoint / "f").read_bytes() == b"x"


def test_writes_mode_reaches_the_backing_dir_after_write_back(
    fuse_mount: MountFactory, tmp_path: Path
) -> None:
    # A write-back long enough that the "not yet" below holds on a loaded machine.
    m = cached(fuse_mount, tmp_path, "writes", "vfs-write-back=5")
    payload = os.urandom(3 * MiB)
    (m.mountpoint / "out.bin").write_bytes(payload)
    assert os.stat(m.mountpoint / "out.bin").st_size == len(payload)
    assert [p.name for p in m.backing.iterdir()] == []
    assert holds_within(lambda: (m.backing / "out.bin").exists(), timeout=30)
    assert (m.backing / "out.bin").read_bytes() == payload


def test_unmount_uploads_pending_files_before_exit(
    fuse_mount: MountFactory, tmp_path: Path
) -> None:
    m = cached(fuse_mount, tmp_path, "writes", "vfs-write-back=1h")
    (m.mountpoint / "late.txt").write_bytes(b"never stranded")
    assert not (m.backing / "late.txt").exists()
    subprocess.run(["fusermount3", "-u", str(m.mountpoint)], check=True)
    m.process.wait(timeout=20)
    assert (m.backing / "late.txt").read_bytes() == b"never stranded"


def test_a_sequential_write_is_sent_while_written(fuse_mount: MountFactory, tmp_path: Path) -> None:
    m = cached(fuse_mount, tmp_path, "writes", "vfs-write-back=1h")
    payload = os.urandom(24 * MiB)

    def temporaries() -> list[Path]:
        return [p for p in m.backing.iterdir() if p.name.startswith(".big.bin.")]

    fd = os.open(m.mountpoint / "big.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for pos in range(0, 16 * MiB, MiB):
            os.write(fd, payload[pos : pos + MiB])
        # Still open: the bytes are on their way to a temporary file, not the name.
        assert holds_within(lambda: sum(p.stat().st_size for p in temporaries()) >= 12 * MiB)
        assert not (m.backing / "big.bin").exists()
        for pos in range(16 * MiB, len(payload), MiB):
            os.write(fd, payload[pos : pos + MiB])
    finally:
        os.close(fd)
    assert not (m.backing / "big.bin").exists()  # named by the upload only (at unmount)
    subprocess.run(["fusermount3", "-u", str(m.mountpoint)], check=True)
    m.process.wait(timeout=20)
    assert (m.backing / "big.bin").read_bytes() == payload
    assert temporaries() == []


# ----- mount workers: drain, recovery, one worker per cache ----------------------------


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.base = tmp / "mnt"
        self.cache = tmp / "cache"
        self.remote = tmp / "remote"
        for d in (self.base, self.cache, self.remote):
            d.mkdir()

    def manager(self, **kw: float) -> WorkerMountManager:
        return WorkerMountManager(str(self.base), str(self.cache), {}, "DEBUG", None, **kw)

    def volume(self, **options: str) -> Volume:
        root = str(self.remote)
        return Volume(
            name="vol",
            mountpoint=str(self.base / "vol"),
            created_at=datetime.now(UTC),
            options={"remote": root, **options},
            spec=VolumeSpec(BackendSpec("local", root)),
        )

    def holder(self) -> int | None:
        return lock_holder(worker_paths(str(self.cache), "vol").lock)

    async def wait_for_status(self, state: str, *, pending_uploads: int) -> None:
        """Poll the worker until it reports `state` with that many uploads pending."""
        socket = worker_paths(str(self.cache), "vol").socket
        end = time.monotonic() + 20
        while True:
            status = await call_worker(socket, "status")
            if (status["state"], status["pending_uploads"]) == (state, pending_uploads):
                return
            assert time.monotonic() < end, f"the worker is still {status}"
            await anyio.sleep(0.05)

    def wait_for_log(self, text: str) -> None:
        """Poll the worker's log until a line holds `text`."""
        log = Path(worker_paths(str(self.cache), "vol").log)
        assert holds_within(lambda: log.exists() and text in log.read_text(), timeout=20), (
            f"no {text!r} in the worker's log"
        )

    def block_uploads_to(self, directory: str) -> None:
        """Uploads into `directory` fail, and are retried, until `unblock_uploads_to`:
        a file stands where the directory was (a missing one would be made again)."""
        (self.remote / directory).rmdir()
        (self.remote / directory).write_bytes(b"in the way")

    def unblock_uploads_to(self, directory: str) -> None:
        (self.remote / directory).unlink()
        (self.remote / directory).mkdir()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    pid = e.holder()
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for entry in reversed(parse_mountinfo(Path("/proc/self/mountinfo").read_text())):
        if entry.mountpoint.startswith(str(tmp_path)):
            subprocess.run(["fusermount3", "-u", "-z", entry.mountpoint], check=False)


LATER = {"vfs-cache-mode": "writes", "vfs-write-back": "1h"}


async def test_worker_unmounts_at_once_and_exits_after_uploading(env: Env) -> None:
    manager, volume = env.manager(linger=0), env.volume(**LATER)
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid("vol")
    assert pid is not None
    payload = os.urandom(5 * MiB)
    Path(volume.mountpoint, "result.bin").write_bytes(payload)
    assert not (env.remote / "result.bin").exists()
    await manager.unmount(volume)
    assert not is_mounted(volume.mountpoint)  # the mount went at once
    assert holds_within(lambda: process_gone(pid), timeout=20)
    assert (env.remote / "result.bin").read_bytes() == payload
    assert env.holder() is None


async def test_sigkilled_worker_uploads_at_the_next_mount(env: Env) -> None:
    manager, volume = env.manager(), env.volume(**LATER)
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid("vol")
    assert pid is not None
    Path(volume.mountpoint, "a.txt").write_bytes(b"closed, then killed")
    os.kill(pid, signal.SIGKILL)
    assert holds_within(lambda: is_stale(volume.mountpoint) or not is_mounted(volume.mountpoint))
    assert not (env.remote / "a.txt").exists()
    assert holds_within(lambda: manager.worker_pid("vol") is None)  # its supervisor noticed

    await manager.mount(volume)  # a new worker: it clears the stale mount and uploads
    assert holds_within(lambda: (env.remote / "a.txt").exists())
    assert (env.remote / "a.txt").read_bytes() == b"closed, then killed"
    assert Path(volume.mountpoint, "a.txt").read_bytes() == b"closed, then killed"
    await manager.unmount(volume)


async def test_recover_starts_a_drain_only_worker(env: Env) -> None:
    manager, volume = env.manager(), env.volume(**LATER)
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid("vol")
    assert pid is not None
    Path(volume.mountpoint, "b.txt").write_bytes(b"pending")
    os.kill(pid, signal.SIGKILL)
    assert holds_within(lambda: env.holder() is None)

    restarted = env.manager()  # a daemon restart: the volume is not mounted again
    assert await restarted.adopt(volume) is False
    assert await restarted.recover(volume) is True
    assert holds_within(lambda: (env.remote / "b.txt").exists())
    assert (env.remote / "b.txt").read_bytes() == b"pending"
    assert holds_within(lambda: env.holder() is None)  # the drain-only worker exits
    assert not is_mounted(volume.mountpoint)
    assert await restarted.recover(volume) is False  # nothing pending any more


async def test_mount_while_uploading_is_served_by_the_same_worker(env: Env) -> None:
    manager, volume = env.manager(), env.volume(**LATER)
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid("vol")
    payload = os.urandom(2 * MiB)
    (env.remote / "sub").mkdir()
    Path(volume.mountpoint, "sub", "f").write_bytes(payload)
    env.block_uploads_to("sub")
    await manager.unmount(volume)
    await env.wait_for_status("draining", pending_uploads=1)
    # The kernel sends the file's release on its own time, maybe after the unmount:
    # the drain's upload has begun once it has failed once.
    env.wait_for_log("sub/f: upload failed (attempt 1)")

    # The upload can't finish while blocked, so a Mount that returns now did not
    # wait for it: it goes on under the new mount.
    await manager.mount(volume)
    await env.wait_for_status("mounted", pending_uploads=1)
    assert manager.worker_pid("vol") == pid and env.holder() == pid
    env.unblock_uploads_to("sub")
    assert holds_within(lambda: (env.remote / "sub" / "f").exists(), timeout=20)
    assert (env.remote / "sub" / "f").read_bytes() == payload
    assert Path(volume.mountpoint, "sub", "f").read_bytes() == payload
    await manager.unmount(volume)


async def test_mount_waits_for_a_draining_worker_then_takes_over(env: Env) -> None:
    manager = env.manager(drain_wait=1.0, stop_wait=10.0)
    volume = env.volume(**LATER)
    (env.remote / "sub").mkdir()
    await manager.prepare(volume)
    await manager.mount(volume)
    first = manager.worker_pid("vol")
    assert first is not None
    Path(volume.mountpoint, "sub", "f").write_bytes(b"retried")
    # The first worker keeps draining (retrying) after the unmount.
    env.block_uploads_to("sub")
    await manager.unmount(volume)
    await env.wait_for_status("draining", pending_uploads=1)
    assert env.holder() == first

    # A daemon restarted with other flags: the worker refuses the job and is told
    # to retire, but keeps retrying its upload.
    manager.daemon_defaults = {"dir-cache-time": "1s"}
    await manager.mount(volume)  # waits 1 s, then stops the old worker
    second = manager.worker_pid("vol")
    assert second is not None and second != first
    # It gave the lock up, so the second could start; its process may still be exiting.
    assert holds_within(lambda: process_gone(first))
    assert env.holder() == second  # one worker on the cache, never two
    env.unblock_uploads_to("sub")
    assert holds_within(lambda: (env.remote / "sub" / "f").exists(), timeout=20)
    assert (env.remote / "sub" / "f").read_bytes() == b"retried"
    await manager.unmount(volume)


async def test_removing_a_volume_removes_its_cache_once_uploaded(env: Env) -> None:
    manager, volume = env.manager(), env.volume(**{"vfs-cache-mode": "full"})
    (env.remote / "f").write_bytes(b"cached")
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid("vol")
    assert pid is not None
    assert Path(volume.mountpoint, "f").read_bytes() == b"cached"
    Path(volume.mountpoint, "g").write_bytes(b"written")
    await manager.unmount(volume)
    assert holds_within(lambda: (env.remote / "g").exists(), timeout=20)
    cache = env.cache / "vfs" / "vol"
    assert (cache / "data" / "f").exists()  # kept while the volume exists
    await manager.discard(volume)  # its worker, waiting for another Mount, exits
    assert holds_within(lambda: process_gone(pid))
    assert (env.remote / "g").read_bytes() == b"written"
    assert not cache.exists()


async def test_a_volume_removed_while_uploading_loses_its_cache_once_uploaded(
    env: Env,
) -> None:
    manager, volume = env.manager(), env.volume(**LATER)
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid("vol")
    assert pid is not None
    (env.remote / "sub").mkdir()
    Path(volume.mountpoint, "sub", "f").write_bytes(b"late but whole")
    env.block_uploads_to("sub")
    await manager.unmount(volume)
    await manager.discard(volume)
    cache = env.cache / "vfs" / "vol"
    assert cache.exists() and not process_gone(pid)  # still uploading: the data stays

    env.unblock_uploads_to("sub")
    assert holds_within(lambda: process_gone(pid), timeout=20)
    assert (env.remote / "sub" / "f").read_bytes() == b"late but whole"
    assert not cache.exists()  # the worker took the removed volume's cache with it


async def test_sigterm_unmounts_and_uploads_before_exit(env: Env) -> None:
    manager, volume = env.manager(), env.volume(**LATER)
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid("vol")
    assert pid is not None
    Path(volume.mountpoint, "t.txt").write_bytes(b"terminated")
    os.kill(pid, signal.SIGTERM)
    assert holds_within(lambda: process_gone(pid), timeout=20)
    assert not is_mounted(volume.mountpoint)
    assert (env.remote / "t.txt").read_bytes() == b"terminated"


async def test_a_damaged_record_after_a_crash_is_set_aside_not_uploaded(env: Env) -> None:
    (env.remote / "doc.txt").write_bytes(b"good remote copy")
    manager, volume = env.manager(), env.volume(**LATER)
    await manager.prepare(volume)
    await manager.mount(volume)
    pid = manager.worker_pid("vol")
    assert pid is not None
    Path(volume.mountpoint, "doc.txt").write_bytes(b"edit the crash caught")
    os.kill(pid, signal.SIGKILL)
    assert holds_within(lambda: manager.worker_pid("vol") is None)
    cache = env.cache / "vfs" / "vol"
    (cache / "meta" / "doc.txt").write_bytes(b'{"version": 1, "si')  # torn by the disk

    await manager.mount(volume)  # the next worker starts, and serves
    assert Path(volume.mountpoint, "doc.txt").read_bytes() == b"good remote copy"
    env.wait_for_log("damaged cache record")
    [kept] = (env.cache / "corrupt" / "vol").iterdir()
    assert (kept / "doc.txt").read_bytes() == b"edit the crash caught"
    await manager.unmount(volume)
    assert (env.remote / "doc.txt").read_bytes() == b"good remote copy"
