"""Load: 20 volumes, each driven by its own thread through create, a container that
writes and reads through it, and remove, 100 cycles in all, while another thread
keeps asking the plugin for its volume list. Every call answers, every byte lands,
and afterwards nothing is left: no worker, FUSE mount, control socket, cache
directory, temporary file on the server, or file descriptor of the daemon."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.integration.fixtures.cloudvol_daemon import (
    CloudvolDaemon,
    cloudvol_daemon,
    fuse_mounts_under,
)
from tests.integration.fixtures.docker_env import docker_env, unique
from tests.integration.fixtures.dockerd import Dockerd, dockerd
from tests.integration.fixtures.polling import wait_until
from tests.integration.fixtures.sshd import SshdServer, sshd

__all__ = ["cloudvol_daemon", "docker_env", "dockerd", "sshd"]  # fixtures used by name

VOLUMES, CYCLES_EACH = 20, 5
DOCKER_PLUGIN_TIMEOUT = 30.0  # what dockerd waits for a plugin's answer


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def fd_targets(pid: int) -> list[str]:
    targets = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            targets.append(os.readlink(fd))
        except FileNotFoundError:
            continue
    return targets


def open_fds(pid: int) -> int:
    return len(fd_targets(pid))


def test_twenty_volumes_through_a_hundred_cycles_leave_nothing_behind(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer
) -> None:
    docker, daemon = docker_env
    assert daemon.proc is not None
    daemon_pid = daemon.proc.pid
    # Warm up once, so that the fork server and its imports are counted as there.
    warm = unique("warm")
    (sshd.data_dir / warm).mkdir()
    docker.run("volume", "create", "-d", daemon.driver, *sshd.volume_options(sshd.data_dir / warm),
               warm)  # fmt: skip
    docker.in_container(warm, "echo warm > /data/w")
    docker.run("volume", "rm", warm)
    wait_until("the warm-up worker is gone", lambda: not daemon.live_worker_pids())
    fds_before = open_fds(daemon_pid)
    [fork_server] = children(daemon_pid)

    stop = threading.Event()
    list_latencies: list[float] = []

    def keep_listing() -> None:
        transport = httpx.HTTPTransport(uds=str(daemon.socket))
        with httpx.Client(transport=transport, timeout=DOCKER_PLUGIN_TIMEOUT) as client:
            while not stop.is_set():
                start = time.monotonic()
                answer = client.post("http://cloudvol/VolumeDriver.List", content=b"{}")
                assert answer.status_code == 200, answer.text
                list_latencies.append(time.monotonic() - start)
                time.sleep(0.05)

    def cycles(index: int) -> list[Path]:
        remotes = []
        for cycle in range(CYCLES_EACH):
            name = unique(f"ld{index}c{cycle}")
            remote = sshd.data_dir / name
            remote.mkdir()
            docker.run("volume", "create", "-d", daemon.driver, *sshd.volume_options(remote),
                       "-o", "vfs-cache-mode=writes", name)  # fmt: skip
            text = f"{name} " * 1000
            out = docker.in_container(name, f"echo '{text}' > /data/f; sync; cat /data/f")
            assert out == f"{text}\n"
            docker.run("volume", "rm", name)  # waits for nothing: the upload finishes after
            remotes.append(remote)
        return remotes

    lister = threading.Thread(target=keep_listing)
    lister.start()
    try:
        with ThreadPoolExecutor(VOLUMES) as pool:
            remotes = [r for rs in pool.map(cycles, range(VOLUMES)) for r in rs]
    finally:
        stop.set()
        lister.join()
    assert len(remotes) == VOLUMES * CYCLES_EACH

    def all_uploaded() -> bool:
        return all(
            (r / "f").exists() and (r / "f").read_text() == f"{r.name} " * 1000 + "\n"
            for r in remotes
        )

    wait_until("every volume's file reached the server", all_uploaded, daemon.log_tail)
    wait_until("every worker exited", lambda: not children(fork_server), daemon.log_tail)
    assert daemon.live_worker_pids() == {}
    assert fuse_mounts_under(daemon.base_dir) == []
    assert list(daemon.base_dir.iterdir()) == []  # mountpoints removed with their volumes
    workers_dir = daemon.cache_dir / "workers"
    assert [p.name for p in workers_dir.iterdir() if p.suffix == ".sock"] == []
    vfs_dir = daemon.cache_dir / "vfs"
    assert not vfs_dir.exists() or list(vfs_dir.iterdir()) == []
    assert [p for r in remotes for p in r.iterdir() if p.name != "f"] == []  # no temp file
    # Docker keeps its plugin connections open a while; the daemon closes idle ones.
    wait_until(
        "the daemon holds no more descriptors than before",
        lambda: open_fds(daemon_pid) <= fds_before + 2,
        lambda: f"{fds_before} before: " + " ".join(fd_targets(daemon_pid)),
    )
    assert children(daemon_pid) == [fork_server]
    assert list_latencies and max(list_latencies) < DOCKER_PLUGIN_TIMEOUT
