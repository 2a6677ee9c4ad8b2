"""A soak: constant mount/unmount with reads and writes for a long time (30 minutes by
default), then the memory (RSS) and open file descriptors of the daemon, the fork
server and the workers at the start and at the end. Growth beyond noise is a leak.

    make soak                     # 30 minutes
    .venv/bin/python bench/soak.py --minutes 5

Each round: every one of `--volumes` SFTP volumes is used by a container that
writes a random 1 MiB file and by a second one that reads it back (a Mount and an
Unmount each), and one volume is created, used and removed. The figures are printed and appended to
bench/RESULTS.md with the command that made them."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.fixtures.cloudvol_daemon import CloudvolDaemon, running_daemon
from tests.integration.fixtures.dockerd import Dockerd, running_dockerd
from tests.integration.fixtures.sshd import SshdServer, running_sshd

RESULTS = Path(__file__).with_name("RESULTS.md")


@dataclass(frozen=True)
class Sample:
    when: float
    rss_mib: dict[str, float]  # role -> total RSS
    fds: dict[str, int]  # role -> total open descriptors
    processes: dict[str, int]  # role -> how many


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def sample(daemon: CloudvolDaemon) -> Sample:
    assert daemon.proc is not None
    roles: dict[str, list[int]] = {"daemon": [daemon.proc.pid], "fork server": [], "workers": []}
    for child in _children(daemon.proc.pid):
        roles["fork server"].append(child)
        roles["workers"].extend(_children(child))
    rss, fds = {}, {}
    for role, pids in roles.items():
        live = [p for p in pids if Path(f"/proc/{p}").exists()]
        rss[role] = sum(_status_kib(p, "VmRSS") for p in live) / 1024
        fds[role] = sum(len(os.listdir(f"/proc/{p}/fd")) for p in live)
    return Sample(time.time(), rss, fds, {r: len(p) for r, p in roles.items()})


def use(docker: Dockerd, volume: str) -> None:
    """Write a random MiB through the volume in one container, read it back in the
    next: a Mount and an Unmount each, every byte through the VFS."""
    wrote = docker.in_container(
        volume, "dd if=/dev/urandom of=/data/f bs=1048576 count=1 2>/dev/null; md5sum /data/f"
    )
    read = docker.in_container(volume, "md5sum /data/f")
    assert wrote.split()[0] == read.split()[0], f"{volume}: wrote {wrote!r}, read {read!r}"


def soak(minutes: float, volumes: int, root: Path) -> tuple[Sample, Sample, int]:
    with ExitStack() as stack:
        sshd: SshdServer = stack.enter_context(running_sshd(root / "ssh"))
        (root / "d").mkdir()
        docker: Dockerd = stack.enter_context(running_dockerd(root / "d"))
        daemon = stack.enter_context(running_daemon(root / "cv", f"cloudvolsoak{os.getpid()}"))
        names = []
        for n in range(volumes):
            remote_dir = sshd.data_dir / f"v{n}"
            remote_dir.mkdir()
            name = f"soak{n}"
            docker.run("volume", "create", "-d", daemon.driver, *sshd.volume_options(remote_dir),
                       "-o", "vfs-cache-mode=writes", name)  # fmt: skip
            names.append((name, remote_dir))
        rounds = 0

        def one_round() -> None:
            for name, _ in names:
                use(docker, name)
            fresh, fresh_dir = f"fresh{rounds}", sshd.data_dir / f"fresh{rounds}"
            fresh_dir.mkdir()
            docker.run("volume", "create", "-d", daemon.driver, *sshd.volume_options(fresh_dir),
                       fresh)  # fmt: skip
            use(docker, fresh)
            docker.run("volume", "rm", fresh)

        for _ in range(3):  # warm-up: imports, connections, caches
            one_round()
            rounds += 1
        first = sample(daemon)
        end = time.monotonic() + minutes * 60
        while time.monotonic() < end:
            one_round()
            rounds += 1
        last = sample(daemon)
        return first, last, rounds


def report(first: Sample, last: Sample, rounds: int, minutes: float, volumes: int) -> str:
    lines = [
        f"\n## Soak: {minutes:g} min of mount/unmount with reads and writes, {volumes} volumes "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(last.when))})\n",
        f"Command: `.venv/bin/python bench/soak.py --minutes {minutes:g} --volumes {volumes}`. "
        f"{rounds} rounds, each {2 * (volumes + 1)} `docker run`s (a Mount and an Unmount each) "
        "and one volume created and removed. Figures after 3 warm-up rounds and at the end.\n",
        "| process | RSS at start (MiB) | RSS at end (MiB) | open fds at start | open fds at end |",
        "|---|---|---|---|---|",
    ]
    for role in first.rss_mib:
        lines.append(
            f"| {role} ({first.processes[role]} → {last.processes[role]}) "
            f"| {first.rss_mib[role]:.1f} | {last.rss_mib[role]:.1f} "
            f"| {first.fds[role]} | {last.fds[role]} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--volumes", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak", dir="/tmp") as tmp:
        first, last, rounds = soak(args.minutes, args.volumes, Path(tmp))
    text = report(first, last, rounds, args.minutes, args.volumes)
    print(text)
    with RESULTS.open("a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
