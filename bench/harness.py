"""What the benchmarks run on: the remotes (one sshd on loopback for SFTP, one moto
standalone server on loopback for S3, each started when a scenario first needs
it), one private dockerd, the cloudvol daemon and `rclone serve docker` as volume
plugins, and sshfs as a plain mount of the SFTP remote. Every target of a
scenario is pointed at the same remote.

Nothing here measures; `bench/scenarios.py` does. Every process, volume, container
and mount made here is taken away again by `Bench.close()`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tests.integration.fixtures.cloudvol_daemon import PLUGIN_DIR, CloudvolDaemon
from tests.integration.fixtures.dockerd import Dockerd
from tests.integration.fixtures.sshd import SshdServer, running_sshd

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


def running_moto(base: Path) -> contextlib.AbstractContextManager[MotoServer]:
    """The test fixtures' moto server (tests/integration/fixtures/moto_s3.py). Imported by
    name so that `mypy bench` does not check that module, whose boto3 has no stubs."""
    fixture = importlib.import_module("tests.integration.fixtures.moto_s3")
    manager: contextlib.AbstractContextManager[MotoServer] = fixture.running_moto(base)
    return manager


# ----- the remotes ----------------------------------------------------------------------


class MotoServer(Protocol):
    """What the bench uses of the fixtures' `MotoServer`."""

    @property
    def endpoint(self) -> str: ...
    @property
    def access_key_id(self) -> str: ...
    @property
    def secret_access_key(self) -> str: ...
    def client(self, **overrides: Any) -> Any: ...


class Remote(Protocol):
    """Where volumes keep their data, addressed by paths relative to its root ("" is
    the root): what a scenario needs to arrange data behind the mounts' backs and to
    see when a write has arrived."""

    name: str  # "sftp", "s3": the backend, as `--backend` names it

    def options(self, path: str) -> list[str]:
        """`docker volume create` options (the same for cloudvol and rclone)."""
        ...

    def exists(self, path: str) -> bool: ...

    def put_random(self, path: str, size: int) -> str:
        """A file of `size` random bytes at `path`; returns their md5."""
        ...

    def put_files(self, directory: str, files: dict[str, bytes]) -> None: ...

    def make_dir(self, path: str) -> None: ...

    def remove_tree(self, path: str) -> None: ...

    def size(self, path: str) -> int | None:
        """Bytes in the file at `path`, None while there is no such file."""
        ...

    def md5(self, path: str) -> str: ...

    def warm(self, path: str) -> None:
        """Make the server's side of reading `path` cheap (so the transport is measured)."""
        ...


@dataclass
class SftpRemote:
    """The sshd's data directory, which this host sees as plain files."""

    server: SshdServer
    name: str = "sftp"

    @property
    def root(self) -> Path:
        return self.server.data_dir

    def local(self, path: str) -> Path:
        return self.root / path if path else self.root

    def options(self, path: str) -> list[str]:
        s = self.server
        return [
            "-o", "type=sftp", "-o", f"sftp-host={s.host}", "-o", f"sftp-port={s.port}",
            "-o", f"sftp-user={s.user}", "-o", f"sftp-key-file={s.key_file}",
            "-o", f"path={self.local(path)}",
        ]  # fmt: skip

    def exists(self, path: str) -> bool:
        return self.local(path).exists()

    def put_random(self, path: str, size: int) -> str:
        return random_file(self.local(path), size)

    def put_files(self, directory: str, files: dict[str, bytes]) -> None:
        self.make_dir(directory)
        for name, body in files.items():
            (self.local(directory) / name).write_bytes(body)

    def make_dir(self, path: str) -> None:
        self.local(path).mkdir(parents=True, exist_ok=True)

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(self.local(path), ignore_errors=True)

    def size(self, path: str) -> int | None:
        local = self.local(path)
        return local.stat().st_size if local.is_file() else None

    def md5(self, path: str) -> str:
        return md5_of(self.local(path))

    def warm(self, path: str) -> None:
        read_whole(self.local(path))  # sshd then reads it from the page cache


@dataclass
class S3Remote:
    """One bucket on a moto server; paths are key prefixes below it."""

    server: MotoServer
    bucket: str
    scratch: Path  # local staging for uploads
    name: str = "s3"
    client: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.client = self.server.client()
        self.client.create_bucket(Bucket=self.bucket)
        self.scratch.mkdir(parents=True, exist_ok=True)

    def options(self, path: str) -> list[str]:
        s = self.server
        return [
            "-o", "type=s3", "-o", "s3-provider=Other", "-o", f"s3-endpoint={s.endpoint}",
            "-o", f"s3-access-key-id={s.access_key_id}",
            "-o", f"s3-secret-access-key={s.secret_access_key}",
            "-o", f"path={self.bucket}/{path}".rstrip("/"),
        ]  # fmt: skip

    def keys(self, prefix: str) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield str(item["Key"])

    def exists(self, path: str) -> bool:
        return next(self.keys(path), None) is not None

    def put_random(self, path: str, size: int) -> str:
        staged = self.scratch / unique("up")
        try:
            md5 = random_file(staged, size)
            self.client.upload_file(str(staged), self.bucket, path)
        finally:
            staged.unlink(missing_ok=True)
        return md5

    def put_files(self, directory: str, files: dict[str, bytes]) -> None:
        def put(item: tuple[str, bytes]) -> None:
            self.client.put_object(Bucket=self.bucket, Key=f"{directory}/{item[0]}", Body=item[1])

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, files.items()))

    def make_dir(self, path: str) -> None:
        pass  # a prefix needs no object before the first key below it

    def remove_tree(self, path: str) -> None:
        keys = [{"Key": key} for key in self.keys(f"{path}/")]
        for i in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys[i : i + 1000]})

    def size(self, path: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=path)["ContentLength"])
        except self.client.exceptions.ClientError:
            return None

    def md5(self, path: str) -> str:
        digest = hashlib.md5()
        body = self.client.get_object(Bucket=self.bucket, Key=path)["Body"]
        for chunk in body.iter_chunks(4 * MiB):
            digest.update(chunk)
        return digest.hexdigest()

    def warm(self, path: str) -> None:
        pass  # moto keeps its objects in memory


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
        # rclone's S3 client (AWS SDK for Go v1) fails every s3 volume with
        # LoadCustomCABundleError when AWS_CA_BUNDLE is set, as it cannot put a CA bundle
        # into rclone's own HTTP transport; the remotes here are plain http on loopback.
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    "rclone", "serve", "docker", "--socket-addr", str(self.socket),
                    "--base-dir", str(self.base_dir), "--cache-dir", str(self.root / "cache"),
                    "--config", str(self.root / "rclone.conf"), "-v",
                ],
                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True, env=env,
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
    options: tuple[str, ...]  # -o key=value pairs beyond the remote's
    pid_of: Callable[[str], int]  # the process serving a mounted volume, by volume name
    settle: Callable[[str], None] = lambda _volume: None  # wait out work left after rm


# ----- the bench ----------------------------------------------------------------------


class Bench:
    """The shared environment of one benchmark run."""

    def __init__(self, root: Path, docker: Dockerd) -> None:
        self.root = root
        self.docker = docker
        self.cloudvol: CloudvolDaemon | None = None
        self.rclone: RcloneDaemon | None = None
        self._sftp: SftpRemote | None = None
        self._s3: S3Remote | None = None
        self._more: dict[str, Remote] = {}  # issue 13's crypt and webdav remotes
        self._cleanup = contextlib.ExitStack()
        self._servers = contextlib.ExitStack()  # closed after the plugins that use them

    def close(self) -> None:
        try:
            self._cleanup.close()
        finally:
            self._servers.close()

    # --- remotes ---

    @property
    def sftp(self) -> SftpRemote:
        if self._sftp is None:
            self._sftp = SftpRemote(self._servers.enter_context(running_sshd(self.root / "ssh")))
        return self._sftp

    @property
    def s3(self) -> S3Remote:
        if self._s3 is None:
            server = self._servers.enter_context(running_moto(self.root / "moto"))
            self._s3 = S3Remote(server, "bench", self.root / "s3-staging")
        return self._s3

    def remote(self, backend: str) -> Remote:
        remotes: dict[str, Callable[[], Remote]] = {
            "sftp": lambda: self.sftp,
            "s3": lambda: self.s3,
            "crypt": self._issue13_remote("crypt"),
            "webdav": self._issue13_remote("webdav"),
        }
        return remotes[backend]()

    def _issue13_remote(self, backend: str) -> Callable[[], Remote]:
        """crypt over the SFTP server, or WebDAV (bench/remotes.py), made on first use."""

        def make() -> Remote:
            from bench.remotes import CryptRemote, running_webdav

            if backend not in self._more:
                if backend == "crypt":
                    self._more[backend] = CryptRemote(self.sftp.server, self.root / "crypt")
                else:
                    self._more[backend] = self._servers.enter_context(
                        running_webdav(self.root / "webdav")
                    )
            return self._more[backend]

        return make

    @property
    def started_remotes(self) -> list[Remote]:
        return [r for r in (self._sftp, self._s3, *self._more.values()) if r is not None]

    # --- plugins ---

    def start_cloudvol(self) -> CloudvolDaemon:
        if self.cloudvol is None:
            daemon = CloudvolDaemon(
                driver=f"cloudvolbench{os.getpid()}",
                base_dir=self.root / "cv-volumes",
                cache_dir=self.root / "cv-cache",
                log_file=self.root / "cloudvol.log",
                verbosity="-v",  # as rclone runs here
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

    # --- volumes and containers ---

    @contextlib.contextmanager
    def volume(self, target: VolumeTarget, remote: Remote, path: str = "") -> Iterator[str]:
        """A fresh volume of `target` on `path` of `remote`; removed after."""
        name = unique("bench")
        self.docker.run(
            "volume", "create", "-d", target.driver, *remote.options(path), *target.options, name
        )
        try:
            yield name
        finally:
            self.docker.run("volume", "rm", "-f", name, check=False, timeout=300)
            target.settle(name)

    @contextlib.contextmanager
    def held(
        self, target: VolumeTarget, remote: Remote, path: str = ""
    ) -> Iterator[tuple[Path, str]]:
        """A volume kept mounted by a sleeping container; yields its host mountpoint."""
        with self.volume(target, remote, path) as name:
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
    def sshfs(self, path: str = "") -> Iterator[tuple[Path, int]]:
        """sshfs of `path` of the SFTP remote in the foreground; yields its mountpoint and pid."""
        mountpoint = self.root / unique("sshfs")
        mountpoint.mkdir()
        s = self.sftp.server
        proc = subprocess.Popen(
            [
                "sshfs", f"{s.user}@{s.host}:{self.sftp.local(path)}", str(mountpoint), "-f",
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
