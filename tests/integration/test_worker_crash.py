"""A volume's mount worker killed (SIGKILL) while a container writes through it:
the daemon notices and says so, the dead FUSE mount leaves the host, what the
worker had not uploaded yet is uploaded by the next one, the next `docker run`
works, and the other volumes never notice."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

from tests.integration.fixtures.cloudvol_daemon import CloudvolDaemon, cloudvol_daemon
from tests.integration.fixtures.docker_env import create, docker_env, unique
from tests.integration.fixtures.dockerd import Dockerd, dockerd
from tests.integration.fixtures.polling import wait_until
from tests.integration.fixtures.sshd import SshdServer, sshd

__all__ = ["cloudvol_daemon", "docker_env", "dockerd", "sshd"]  # fixtures used by name


def stat_errno(path: Path) -> int:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno or -1
    return 0


def test_a_killed_worker_costs_its_own_volume_nothing_but_the_running_container(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer
) -> None:
    docker, daemon = docker_env
    remote, other_remote = sshd.data_dir / "crash", sshd.data_dir / "calm"
    remote.mkdir()
    other_remote.mkdir()
    volume, other = unique("crash"), unique("calm")
    # Uploads an hour away: the killed worker leaves its writes dirty in the cache.
    create(docker, daemon, volume, *sshd.volume_options(remote),
           "-o", "vfs-cache-mode=writes", "-o", "vfs-write-back=1h")  # fmt: skip
    create(docker, daemon, other, *sshd.volume_options(other_remote))
    writer = unique("w")
    docker.run(
        "run", "-d", "--name", writer, "--network", "none", "-v", f"{volume}:/data",
        docker.image, "sh", "-c",
        "echo precious > /data/a; i=0; while true; do echo $i > /data/b; i=$((i+1)); done",
    )  # fmt: skip
    docker.start_holder(other, unique("h"))
    mountpoint = daemon.base_dir / volume
    # `b` comes after `a` was written and closed (`a` exists from its create on).
    wait_until("the writer wrote its file", lambda: (mountpoint / "b").exists())
    worker, other_worker = daemon.live_worker_pids()[volume], daemon.live_worker_pids()[other]

    os.kill(worker, signal.SIGKILL)

    wait_until(
        "the daemon reports the death",
        lambda: f"mount worker {worker} for volume {volume} died" in daemon.log_tail(100_000),
        daemon.log_tail,
    )
    wait_until(
        "the dead mount is off the host",
        lambda: stat_errno(mountpoint) != errno.ENOTCONN,
        daemon.log_tail,
    )
    # The running container keeps Docker's bind of the dead mount: it sees the error.
    seen = docker.run("exec", writer, "cat", "/data/a", check=False)
    assert seen.returncode != 0 and "Transport endpoint is not connected" in seen.stderr
    docker.run("rm", "-f", writer)

    # The next container: a new worker, which serves and uploads what was dirty.
    assert docker.in_container(volume, "cat /data/a") == "precious\n"
    wait_until("the dirty file reached the server",
               lambda: (remote / "a").exists() and (remote / "a").read_text() == "precious\n")  # fmt: skip
    # The other volume's worker and container never noticed.
    assert daemon.live_worker_pids()[other] == other_worker
    assert docker.in_container(other, "echo fine > /data/f; cat /data/f") == "fine\n"
