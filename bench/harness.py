"""What the benchmarks run on: one sshd on loopback as the SFTP remote, one private
dockerd, the cloudvol daemon and `rclone serve docker` as volume plugins, and
sshfs as a plain mount, all pointed at the same remote directory tree.

Nothing here measures; `bench/scenarios.py` does. Every process, volume, container
and mount made here is taken away again by `Bench.close()`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.integration.fixtures.cloudvol_daemon import PLUGIN_DIR, CloudvolDaemon
from tests.integration.fixtures.dockerd import Dockerd
from tests.integration.fixtures.sshd import SshdServer

MiB = 1024 * 1024
SETTLE_TIMEOUT = 300.0  # for a mount worker to finish its uploads after its volume goes


# ----- small tools --------------------------------------------------------------------


def drop_page_cache() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def read_whole(path: Path, block: int = MiB) -> int:
    total = 0
    with open(path, "rb", buffering=0) as fh:
        while chunk := fh.read(block):
            total += len(chunk)
    return total


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def random_file(path: Path, size: int) -> str:
    """`size` random bytes at `path`, written in pieces; returns their md5."""
    digest = hashlib.md5()
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            chunk = os.urandom(min(left, 8 * MiB))
            digest.update(chunk)
            fh.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set size of a process (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def fuse_mounts_under(base: Path) -> list[str]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mountpoint = line.split()[4]
        if mountpoint.startswith(str(base) + "/"):
            mounts.append(mountpoint)
    return mounts


def lazy_unmount_all(base: Path) -> None:
    for mountpoint in reversed(fuse_mounts_under(base)):
        subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=False, capture_output=True)


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid()}x{time.monotonic_ns() % 10**9}"


# ----- the plugins ----------------------------------------------------------------------


@dataclass
class RcloneDaemon:
    """`rclone serve docker` with its own socket, base dir, cache dir and log."""

    driver: str
    root: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return PLUGIN_DIR / f"{self.driver}.sock"

    @property
    def base_dir(self) -> Path:
        return self.root / "volumes"

    @property
    def log_file(self) -> Path:
        return self.root / "rclone.log"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        PLUGIN_DIR.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    "rclone", "serve", "docker", "--socket-addr", str(self.socket),
                    "--base-dir", str(self.base_dir), "--cache-dir", str(self.root / "cache"),
                    "--config", str(self.root / "rclone.conf"), "-v",
                ],
                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rclone serve docker did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)  # it unmounts its volumes on the way out
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None
        lazy_unmount_all(self.base_dir)
        self.socket.unlink(missing_ok=True)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"


@dataclass(frozen=True)
class VolumeTarget:
    """A Docker volume plugin with the options of one configuration under test."""

    label: str  # "cloudvol (writes)", "rclone (off)"...
    driver: str
    options: tuple[str, ...]  # -o key=value pairs beyond the SFTP ones
    pid_of: Callable[[str], int]  # the process serving a mounted volume, by volume name
    settle: Callable[[str], None] = lambda _volume: None  # wait out work left after rm


# ----- the bench ----------------------------------------------------------------------


class Bench:
    """The shared environment of one benchmark run."""

    def __init__(self, root: Path, server: SshdServer, docker: Dockerd) -> None:
        self.root = root
        self.server = server
        self.docker = docker
        self.data = server.data_dir  # the remote's tree, as the sshd host sees it
        self.cloudvol: CloudvolDaemon | None = None
        self.rclone: RcloneDaemon | None = None
        self._cleanup = contextlib.ExitStack()

    def close(self) -> None:
        self._cleanup.close()

    # --- plugins ---

    def start_cloudvol(self) -> CloudvolDaemon:
        if self.cloudvol is None:
            daemon = CloudvolDaemon(
                driver=f"cloudvolbench{os.getpid()}",
                base_dir=self.root / "cv-volumes",
                cache_dir=self.root / "cv-cache",
                log_file=self.root / "cloudvol.log",
            )
            daemon.start()
            self._cleanup.callback(daemon.cleanup)
            self.cloudvol = daemon
        return self.cloudvol

    def start_rclone(self, fresh: bool = False) -> RcloneDaemon:
        """The shared rclone daemon, or (fresh) a new one for this caller alone."""
        if self.rclone is not None and not fresh:
            return self.rclone
        daemon = RcloneDaemon(unique("rclonebench"), self.root / unique("rc"))
        self._cleanup.callback(daemon.stop)
        daemon.start()
        if not fresh:
            self.rclone = daemon
        return daemon

    def cloudvol_target(self, mode: str | None) -> VolumeTarget:
        daemon = self.start_cloudvol()
        options = ("-o", f"vfs-cache-mode={mode}") if mode else ()
        label = f"cloudvol ({mode})" if mode else "cloudvol"

        def worker_pid(volume: str) -> int:
            return daemon.live_worker_pids()[volume]

        def settle(volume: str) -> None:
            # A removed volume's worker may still upload: the remote directory must
            # outlive that, and the next measurement must not share the CPU with it.
            deadline = time.monotonic() + SETTLE_TIMEOUT
            while volume in daemon.live_worker_pids():
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the mount worker of {volume} still runs {SETTLE_TIMEOUT:g} s after"
                        " its volume was removed"
                    )
                time.sleep(0.1)

        return VolumeTarget(label, daemon.driver, options, worker_pid, settle)

    def rclone_target(self, mode: str | None, daemon: RcloneDaemon | None = None) -> VolumeTarget:
        daemon = daemon or self.start_rclone()
        proc = daemon.proc
        assert proc is not None
        options = ("-o", f"vfs-cache-mode={mode}") if mode else ()
        label = f"rclone ({mode})" if mode else "rclone"
        return VolumeTarget(label, daemon.driver, options, lambda _volume: proc.pid)

    def sftp_options(self, path: Path) -> list[str]:
        s = self.server
        return [
            "-o", "type=sftp", "-o", f"sftp-host={s.host}", "-o", f"sftp-port={s.port}",
            "-o", f"sftp-user={s.user}", "-o", f"sftp-key-file={s.key_file}", "-o", f"path={path}",
        ]  # fmt: skip

    # --- volumes and containers ---

    @contextlib.contextmanager
    def volume(self, target: VolumeTarget, path: Path) -> Iterator[str]:
        """A fresh volume of `target` on the remote directory `path`; removed after."""
        name = unique("bench")
        self.docker.run(
            "volume", "create", "-d", target.driver, *self.sftp_options(path), *target.options, name
        )
        try:
            yield name
        finally:
            self.docker.run("volume", "rm", "-f", name, check=False, timeout=300)
            target.settle(name)

    @contextlib.contextmanager
    def held(self, target: VolumeTarget, path: Path) -> Iterator[tuple[Path, str]]:
        """A volume kept mounted by a sleeping container; yields its host mountpoint."""
        with self.volume(target, path) as name:
            holder = f"{name}-holder"
            try:
                self.docker.run(
                    "run", "-d", "--name", holder, "--network", "none", "-v", f"{name}:/data",
                    self.docker.image, "sleep", "36000",
                )  # fmt: skip
                mountpoint = self.docker.run(
                    "volume", "inspect", "-f", "{{.Mountpoint}}", name
                ).stdout.strip()
                yield Path(mountpoint), name
            finally:
                self.docker.run("rm", "-f", holder, check=False, timeout=300)

    def container(self, *args: str) -> subprocess.Popen[bytes]:
        """`docker run --rm --network none ARGS...`, started and not waited for."""
        return subprocess.Popen(
            [
                "docker",
                "-H",
                f"unix://{self.docker.socket}",
                "run",
                "--rm",
                "--network",
                "none",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    # --- sshfs ---

    @contextlib.contextmanager
    def sshfs(self, remote_dir: Path) -> Iterator[tuple[Path, int]]:
        """sshfs of `remote_dir` in the foreground; yields its mountpoint and pid."""
        mountpoint = self.root / unique("sshfs")
        mountpoint.mkdir()
        s = self.server
        proc = subprocess.Popen(
            [
                "sshfs", f"{s.user}@{s.host}:{remote_dir}", str(mountpoint), "-f",
                "-p", str(s.port), "-o", f"IdentityFile={s.key_file}",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while str(mountpoint) not in fuse_mounts_under(mountpoint.parent):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshfs did not mount {mountpoint}")
                time.sleep(0.05)
            yield mountpoint, proc.pid
        finally:
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            with contextlib.suppress(OSError):
                mountpoint.rmdir()
