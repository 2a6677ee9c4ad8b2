"""Data integrity through the whole stack: a real dockerd, the cloudvol daemon, its
mount workers and a real sshd as the SFTP remote.

What is written in a container must reach the remote whole, even when the daemon
and the mount worker are SIGKILLed while the upload waits, when several containers
write to one volume at once, and when the volume is unmounted and removed right
after the container exits (rclone 1.60.1 leaves a file written with
`vfs-cache-mode=full` in its cache for good then). The data is made on the host and
bind-mounted into the containers, so its md5 is known without reading it back
through the mount.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from adapters.mounting.system import lock_holder
from tests.integration.fixtures.cloudvol_daemon import CloudvolDaemon, cloudvol_daemon
from tests.integration.fixtures.docker_env import docker_env, unique
from tests.integration.fixtures.dockerd import Dockerd, dockerd
from tests.integration.fixtures.processes import process_gone
from tests.integration.fixtures.sshd import SshdServer, sshd

__all__ = ["cloudvol_daemon", "docker_env", "dockerd", "sshd"]  # fixtures used by name

MiB = 1024 * 1024
DELIVERY_DEADLINE = 60.0  # from the container's exit until the remote holds the file
# After a SIGKILL: a restart, then up to vfs-write-back (30 s) before the upload.
RECOVERY_DEADLINE = 90.0


def random_file(path: Path, size: int) -> str:
    """Write `size` random bytes to `path`; returns their md5."""
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.md5(data).hexdigest()


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def describe(path: Path) -> str:
    if not path.exists():
        siblings = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
        return f"{path} is missing (the remote directory holds {siblings})"
    return f"{path} has {path.stat().st_size} bytes, md5 {md5_of(path)}"


def wait_for_remote(
    files: dict[Path, tuple[int, str]], deadline: float, context: Callable[[], str]
) -> None:
    """Poll until every remote file has its size and md5, or fail with what is there."""
    end = time.monotonic() + deadline
    pending = dict(files)
    while pending:
        for path, (size, md5) in list(pending.items()):
            if path.is_file() and path.stat().st_size == size and md5_of(path) == md5:
                del pending[path]
        if not pending:
            return
        if time.monotonic() > end:
            raise AssertionError(
                f"not on the remote whole within {deadline:g} s:\n"
                + "\n".join(
                    f"  want {size} bytes md5 {md5}: {describe(p)}"
                    for p, (size, md5) in pending.items()
                )
                + f"\n{context()}"
            )
        time.sleep(0.5)


def wait_for_log(docker: Dockerd, container: str, text: str, deadline: float) -> str:
    end = time.monotonic() + deadline
    while True:
        logs = docker.run("logs", container, check=False)
        if text in logs.stdout:
            return logs.stdout
        state = docker.run("inspect", "-f", "{{.State.Status}}", container, check=False)
        assert state.stdout.strip() == "running", (
            f"container {container} is {state.stdout.strip()} without printing {text!r}:\n"
            f"{logs.stdout}{logs.stderr}"
        )
        assert time.monotonic() < end, f"{container} did not print {text!r} in {deadline:g} s"
        time.sleep(0.2)


def worker_log(daemon: CloudvolDaemon, volume: str) -> str:
    path = daemon.cache_dir / "workers" / f"{volume}.log"
    try:
        return f"worker log {path}:\n{path.read_text(errors='replace')[-4000:]}"
    except FileNotFoundError:
        return f"(no worker log at {path})"


def context(daemon: CloudvolDaemon, volume: str) -> Callable[[], str]:
    return lambda: f"daemon log:\n{daemon.log_tail()}\n{worker_log(daemon, volume)}"


def worker_pid(daemon: CloudvolDaemon, volume: str) -> int:
    """The mount worker serving `volume`: its lock file holds its pid."""
    lock = daemon.cache_dir / "workers" / f"{volume}.lock"
    text = lock.read_text().strip()
    assert text.isdigit(), f"{lock} holds {text!r}, not a pid"
    pid = int(text)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "entrypoints.mount_worker" in cmdline, f"pid {pid} from {lock} is {cmdline!r}"
    return pid


def lock_released(daemon: CloudvolDaemon, volume: str) -> bool:
    # Held (flock) by a live worker only; the pid a dead one left in it does not count.
    return lock_holder(str(daemon.cache_dir / "workers" / f"{volume}.lock")) is None


def run_args(volume: str, src: Path) -> list[str]:
    return ["--network", "none", "-v", f"{volume}:/data", "-v", f"{src}:/src:ro"]


def test_upload_pending_at_sigkill_of_daemon_and_worker_reaches_the_remote_after_restart(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer, tmp_path: Path
) -> None:
    docker, daemon = docker_env
    remote = sshd.data_dir / "killed"
    remote.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    md5 = random_file(src / "big", 20 * MiB)
    name = unique("kill")
    docker.run(
        "volume", "create", "-d", daemon.driver, *sshd.volume_options(remote),
        "-o", "vfs-cache-mode=writes", "-o", "vfs-write-back=30s", name,
    )  # fmt: skip

    writer = unique("writer")
    docker.run(
        "run", "-d", "--name", writer, *run_args(name, src), docker.image, "sh", "-c",
        "dd if=/src/big of=/data/big bs=1M && echo written && sleep 600",
    )  # fmt: skip
    wait_for_log(docker, writer, "written", deadline=60)  # close() has returned
    assert not (remote / "big").exists() or md5_of(remote / "big") != md5, (
        "with vfs-write-back=30s the upload should still be pending; the test proves nothing"
    )

    pid = worker_pid(daemon, name)
    daemon.kill()  # first, so that it cannot react to its worker's death
    os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 10
    while not process_gone(pid):
        assert time.monotonic() < end, f"worker {pid} survived SIGKILL"
        time.sleep(0.05)
    assert lock_released(daemon, name), "another worker serves the volume: nothing was killed"
    assert not (remote / "big").exists() or md5_of(remote / "big") != md5

    daemon.start()
    wait_for_remote({remote / "big": (20 * MiB, md5)}, RECOVERY_DEADLINE, context(daemon, name))


def test_four_containers_writing_to_one_volume_at_once_all_land_complete(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer, tmp_path: Path
) -> None:
    docker, daemon = docker_env
    remote = sshd.data_dir / "four"
    remote.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    gate = tmp_path / "gate"
    gate.mkdir()
    md5s = {i: random_file(src / f"f{i}", 8 * MiB) for i in range(4)}
    name = unique("four")
    docker.run(
        "volume", "create", "-d", daemon.driver, *sshd.volume_options(remote),
        "-o", "vfs-cache-mode=writes", name,
    )  # fmt: skip

    containers = []
    for i in range(4):
        container = unique(f"w{i}")
        # All wait at the gate, so the four writes overlap rather than run in turn.
        docker.run(
            "run", "-d", "--name", container, *run_args(name, src), "-v", f"{gate}:/gate:ro",
            docker.image, "sh", "-c",
            f"while [ ! -e /gate/go ]; do sleep 0.05; done; "
            f"dd if=/src/f{i} of=/data/f{i} bs=1M && cmp /src/f{i} /data/f{i} && echo ok",
        )  # fmt: skip
        containers.append(container)
    (gate / "go").touch()

    for container in containers:
        code = docker.run("wait", container, timeout=120).stdout.strip()
        logs = docker.run("logs", container, check=False)
        assert code == "0" and logs.stdout.strip() == "ok", (
            f"{container} exited {code}: {logs.stdout}{logs.stderr}\n{context(daemon, name)()}"
        )
    wait_for_remote(
        {remote / f"f{i}": (8 * MiB, md5) for i, md5 in md5s.items()},
        DELIVERY_DEADLINE,
        context(daemon, name),
    )


def test_full_mode_file_reaches_the_remote_after_the_container_exits_and_the_volume_is_removed(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer, tmp_path: Path
) -> None:
    """rclone 1.60.1 keeps such a file in its cache for good (RCLONE_FACTS.md)."""
    docker, daemon = docker_env
    remote = sshd.data_dir / "full"
    remote.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    md5 = random_file(src / "big", 64 * MiB)
    name = unique("full")
    docker.run(
        "volume", "create", "-d", daemon.driver, *sshd.volume_options(remote),
        "-o", "vfs-cache-mode=full", name,
    )  # fmt: skip

    docker.run(
        "run", "--rm", *run_args(name, src), docker.image,
        "dd", "if=/src/big", "of=/data/big", "bs=1M",
    )  # fmt: skip
    # At once, while the upload may still be running: that must not lose it.
    docker.run("volume", "rm", name)
    assert name not in docker.run("volume", "ls", "-q").stdout.split()

    wait_for_remote({remote / "big": (64 * MiB, md5)}, DELIVERY_DEADLINE, context(daemon, name))
    end = time.monotonic() + DELIVERY_DEADLINE
    while not lock_released(daemon, name):
        assert time.monotonic() < end, (
            f"the mount worker of {name} still runs {DELIVERY_DEADLINE:g} s after its upload"
            f" finished\n{context(daemon, name)()}"
        )
        time.sleep(0.2)
