"""Mount workers forked by the daemon's fork server, through the real docker CLI,
dockerd, sshd and FUSE: a forked worker serves its volume, workers outlive a
SIGKILL of the daemon and are adopted by the next one (which starts its own fork
server), a killed fork server is replaced, and fifty volumes mount at once."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.integration.fixtures.cloudvol_daemon import (
    CloudvolDaemon,
    cloudvol_daemon,
    fuse_mounts_under,
)
from tests.integration.fixtures.docker_env import create, docker_env, unique
from tests.integration.fixtures.dockerd import Dockerd, dockerd
from tests.integration.fixtures.polling import holds_within
from tests.integration.fixtures.sshd import SshdServer, sshd

__all__ = ["cloudvol_daemon", "docker_env", "dockerd", "sshd"]  # fixtures used by name

FLEET = 50


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _ppid(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def _alive(pid: int) -> bool:
    try:
        return _stat_fields(pid)[0] != "Z"
    except FileNotFoundError:
        return False


def _fork_server_of(daemon: CloudvolDaemon) -> int | None:
    """The daemon's child running `entrypoints.mount_worker --fork-server`."""
    assert daemon.proc is not None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            if b"--fork-server" in cmdline and _ppid(int(entry.name)) == daemon.proc.pid:
                return int(entry.name)
        except (OSError, IndexError):
            continue
    return None


def _started_fork_server(daemon: CloudvolDaemon) -> int:
    assert holds_within(lambda: _fork_server_of(daemon) is not None, timeout=30), daemon.log_tail()
    server = _fork_server_of(daemon)
    assert server is not None
    return server


def test_a_forked_worker_serves_a_volume_end_to_end_through_docker(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer
) -> None:
    docker, daemon = docker_env
    server = _started_fork_server(daemon)
    remote_dir = sshd.data_dir / unique("forked")
    remote_dir.mkdir()
    name = unique("vol")
    create(docker, daemon, name, *sshd.volume_options(remote_dir))
    holder = unique("holder")
    docker.start_holder(name, holder)

    worker = daemon.live_worker_pids()[name]
    assert _ppid(worker) == server  # forked by the server, not a fresh interpreter
    assert os.getsid(worker) == worker  # in a session of its own
    docker.run("exec", holder, "sh", "-c", "echo forked > /data/f")
    assert (remote_dir / "f").read_text() == "forked\n"
    assert docker.in_container(name, "cat /data/f") == "forked\n"

    docker.run("rm", "-f", holder)
    docker.run("volume", "rm", name)
    assert holds_within(lambda: not _alive(worker), timeout=30)
    assert fuse_mounts_under(daemon.base_dir) == []


def test_workers_outlive_a_daemon_sigkill_and_the_next_daemon_adopts_them(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer
) -> None:
    docker, daemon = docker_env
    remote_dir = sshd.data_dir / unique("adopt")
    remote_dir.mkdir()
    name = unique("vol")
    create(docker, daemon, name, *sshd.volume_options(remote_dir))
    holder = unique("holder")
    docker.start_holder(name, holder)
    old_server = _started_fork_server(daemon)
    worker = daemon.live_worker_pids()[name]

    daemon.kill()
    # The fork server goes with its daemon (EOF on its socket); the worker stays.
    assert holds_within(lambda: not _alive(old_server), timeout=10)
    docker.run("exec", holder, "sh", "-c", "echo orphan > /data/o")
    assert (remote_dir / "o").read_text() == "orphan\n"

    daemon.start()
    new_server = _started_fork_server(daemon)
    assert new_server != old_server
    assert daemon.live_worker_pids()[name] == worker  # adopted, not replaced
    # The daemon restores its mounts once it serves its socket: poll for the adoption.
    adopted = f"adopted mount worker {worker} for volume {name}"
    assert holds_within(lambda: adopted in daemon.log_tail(50000), timeout=30), daemon.log_tail()
    docker.run("exec", holder, "sh", "-c", "echo adopted > /data/a")
    assert (remote_dir / "a").read_text() == "adopted\n"

    # A new volume's worker comes from the new server.
    other = unique("vol")
    create(docker, daemon, other, *sshd.volume_options(remote_dir))
    assert docker.in_container(other, "cat /data/a") == "adopted\n"
    docker.run("rm", "-f", holder)
    docker.run("volume", "rm", name, other)  # its worker need not linger for a Mount
    assert holds_within(lambda: not _alive(worker), timeout=30)


def test_a_killed_fork_server_is_noticed_and_replaced_before_the_next_mount(
    docker_env: tuple[Dockerd, CloudvolDaemon], tmp_path: Path
) -> None:
    docker, daemon = docker_env
    backing = tmp_path / "backing"
    backing.mkdir()
    (backing / "x").write_text("served\n")
    first = _started_fork_server(daemon)

    os.kill(first, 9)
    assert holds_within(
        lambda: f"fork server {first} died" in daemon.log_tail(20000), timeout=10
    ), daemon.log_tail()
    second = _started_fork_server(daemon)
    assert second != first

    name = unique("loc")
    create(docker, daemon, name, "-o", f"remote={backing}")
    holder = unique("holder")
    docker.start_holder(name, holder)
    assert _ppid(daemon.live_worker_pids()[name]) == second
    assert docker.run("exec", holder, "cat", "/data/x").stdout == "served\n"
    docker.run("rm", "-f", holder)


def _start_writer(docker: Dockerd, name: str) -> subprocess.Popen[bytes]:
    """`docker run -d` of a container that writes its volume's name into it, then idles."""
    return subprocess.Popen(
        [
            "docker", "-H", f"unix://{docker.socket}", "run", "-d", "--name", f"{name}-c",
            "--network", "none", "-v", f"{name}:/data", docker.image,
            "sh", "-c", f"echo {name} > /data/mine; exec sleep 3600",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_fifty_volumes_mount_at_once_serve_and_leave_nothing_behind(
    docker_env: tuple[Dockerd, CloudvolDaemon], tmp_path: Path
) -> None:
    docker, daemon = docker_env
    _started_fork_server(daemon)
    names = [unique(f"fleet{i}-") for i in range(FLEET)]
    for name in names:
        (tmp_path / name).mkdir()
        create(docker, daemon, name, "-o", f"remote={tmp_path / name}")

    started = time.monotonic()
    runs = [_start_writer(docker, name) for name in names]
    failed = [p.communicate(timeout=300)[1] for p in runs if p.wait(timeout=300) != 0]
    assert not failed, failed[0].decode()
    print(f"{FLEET} docker run -d at once: {time.monotonic() - started:.1f} s")

    # Each container wrote through its own volume's worker (the file shows as soon
    # as it is created, its line a moment later: polled for the whole content).
    def written(name: str) -> bool:
        path = tmp_path / name / "mine"
        return path.is_file() and path.read_text() == f"{name}\n"

    assert holds_within(lambda: all(written(n) for n in names), timeout=60), [
        n for n in names if not written(n)
    ]
    workers = daemon.live_worker_pids()
    assert set(names) <= set(workers)
    assert len({workers[n] for n in names}) == FLEET

    for i in range(0, FLEET, 10):
        docker.run("rm", "-f", *[f"{n}-c" for n in names[i : i + 10]], timeout=300)
        docker.run("volume", "rm", *names[i : i + 10], timeout=300)
    assert holds_within(lambda: not any(_alive(workers[n]) for n in names), timeout=60)
    assert fuse_mounts_under(daemon.base_dir) == []
