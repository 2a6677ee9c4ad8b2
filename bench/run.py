"""Side-by-side benchmarks: cloudvol against `rclone serve docker` (Debian's
rclone 1.60.1) and sshfs, all on the same OpenSSH server on loopback, in one run.

Each target mounts the same remote directory: cloudvol and rclone as Docker
volumes (held mounted by a sleeping container, measured on the host at the
volume's mountpoint), sshfs as a plain mount. Figures are medians of --repeat
runs; the table gives each one as a ratio to rclone's and to sshfs's.

    make bench                       # or: .venv/bin/python bench/run.py --help
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.fixtures.cloudvol_daemon import CloudvolDaemon
from tests.integration.fixtures.dockerd import Dockerd, running_dockerd
from tests.integration.fixtures.sshd import SshdServer, running_sshd

MiB = 1024 * 1024


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


@dataclass
class Target:
    name: str
    mount: Callable[[], contextlib.AbstractContextManager[Path]]


def docker_volume_target(name: str, docker: Dockerd, driver: str, opts: list[str]) -> Target:
    @contextlib.contextmanager
    def mount() -> Iterator[Path]:
        vol = f"bench{os.getpid()}{time.monotonic_ns() % 100000}"
        docker.run("volume", "create", "-d", driver, *opts, vol)
        holder = f"{vol}-holder"
        try:
            docker.run(
                "run",
                "-d",
                "--name",
                holder,
                "--network",
                "none",
                "-v",
                f"{vol}:/data",
                docker.image,
                "sleep",
                "3600",
            )
            mountpoint = docker.run(
                "volume", "inspect", "-f", "{{.Mountpoint}}", vol
            ).stdout.strip()
            yield Path(mountpoint)
        finally:
            docker.run("rm", "-f", holder, check=False)
            docker.run("volume", "rm", "-f", vol, check=False)

    return Target(name, mount)


def sshfs_target(server: SshdServer, remote_dir: Path, root: Path) -> Target:
    @contextlib.contextmanager
    def mount() -> Iterator[Path]:
        mountpoint = Path(tempfile.mkdtemp(dir=root, prefix="sshfs"))
        subprocess.run(
            [
                "sshfs", f"{server.user}@{server.host}:{remote_dir}", str(mountpoint),
                "-p", str(server.port), "-o", f"IdentityFile={server.key_file}",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            ],
            check=True,
        )  # fmt: skip
        try:
            yield mountpoint
        finally:
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)

    return Target("sshfs", mount)


def measure(
    target: Target, big_file: str, listing_dir: str, repeat: int, warm_source: Callable[[], None]
) -> dict[str, float]:
    reads, cold_ls, warm_ls = [], [], []
    for _ in range(repeat):
        with target.mount() as mp:
            cold_ls.append(
                timed(
                    lambda: subprocess.run(
                        ["ls", "-l", str(mp / listing_dir)], check=True, capture_output=True
                    )
                )
            )
            warm_ls.append(
                timed(
                    lambda: subprocess.run(
                        ["ls", "-l", str(mp / listing_dir)], check=True, capture_output=True
                    )
                )
            )
            drop_page_cache()
            warm_source()
            size = (mp / big_file).stat().st_size
            seconds = timed(lambda: read_whole(mp / big_file))
            reads.append(size / MiB / seconds)
    return {
        "read MiB/s": statistics.median(reads),
        "ls -l cold s": statistics.median(cold_ls),
        "ls -l warm s": statistics.median(warm_ls),
    }


def ratio(values: dict[str, float], ref: str, higher_is_better: bool) -> str:
    """How many times better cloudvol is than `ref`: above 1 means cloudvol wins."""
    if ref not in values or "cloudvol" not in values:
        return "-"
    ours, theirs = values["cloudvol"], values[ref]
    return f"{(ours / theirs if higher_is_better else theirs / ours):.2f}x"


def render(results: dict[str, dict[str, float]], command: str, sizes: str) -> str:
    metrics = list(next(iter(results.values())))
    lines = [
        f"### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {sizes}",
        "",
        f"Command: `{command}`",
        "",
        "| metric | " + " | ".join(results) + " | cloudvol / rclone | cloudvol / sshfs |",
        "|---" * (len(results) + 3) + "|",
    ]
    for metric in metrics:
        values = {name: r[metric] for name, r in results.items()}
        higher_is_better = "MiB/s" in metric

        lines.append(
            f"| {metric} | "
            + " | ".join(f"{v:.3f}" for v in values.values())
            + f" | {ratio(values, 'rclone', higher_is_better)} | {ratio(values, 'sshfs', higher_is_better)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size-mib", type=int, default=1024, help="size of the file read sequentially"
    )
    parser.add_argument("--files", type=int, default=2000, help="files in the listed directory")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--targets", default="cloudvol,rclone,sshfs")
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "RESULTS.md")
    args = parser.parse_args()
    command = "python bench/run.py " + " ".join(sys.argv[1:])
    wanted = args.targets.split(",")

    with tempfile.TemporaryDirectory(prefix="cvb", dir="/tmp") as tmp:
        root = Path(tmp)
        with running_sshd(root / "ssh") as server:
            data = server.data_dir
            big = data / "big.bin"
            subprocess.run(
                [
                    "dd",
                    "if=/dev/urandom",
                    f"of={big}",
                    "bs=1M",
                    f"count={args.size_mib}",
                    "status=none",
                ],
                check=True,
            )
            many = data / "many"
            many.mkdir()
            for i in range(args.files):
                (many / f"file-{i:05d}.txt").write_bytes(b"x" * (i % 512))

            def warm_source() -> None:
                read_whole(big)

            sftp_opts = [
                "-o", "type=sftp", "-o", f"sftp-host={server.host}", "-o", f"sftp-port={server.port}",
                "-o", f"sftp-user={server.user}", "-o", f"sftp-key-file={server.key_file}", "-o", f"path={data}",
            ]  # fmt: skip
            with running_dockerd(root / "d") as docker, contextlib.ExitStack() as stack:
                targets: list[Target] = []
                if "cloudvol" in wanted:
                    daemon = CloudvolDaemon(
                        driver=f"cloudvolbench{os.getpid()}",
                        base_dir=root / "cv-volumes",
                        cache_dir=root / "cv-cache",
                        log_file=root / "cloudvol.log",
                    )
                    daemon.start()
                    stack.callback(daemon.cleanup)
                    targets.append(
                        docker_volume_target("cloudvol", docker, daemon.driver, sftp_opts)
                    )
                if "rclone" in wanted:
                    rclone_driver = f"rclonebench{os.getpid()}"
                    sock = Path("/run/docker/plugins") / f"{rclone_driver}.sock"
                    proc = subprocess.Popen(
                        [
                            "rclone", "serve", "docker", "--socket-addr", str(sock),
                            "--base-dir", str(root / "rc-volumes"), "--cache-dir", str(root / "rc-cache"),
                            "--config", str(root / "rclone.conf"),
                        ],
                        stdout=subprocess.DEVNULL, stderr=open(root / "rclone.log", "w"),
                    )  # fmt: skip
                    stack.callback(
                        lambda: (proc.terminate(), proc.wait(), sock.unlink(missing_ok=True))
                    )
                    while not sock.exists():
                        time.sleep(0.1)
                    targets.append(docker_volume_target("rclone", docker, rclone_driver, sftp_opts))
                if "sshfs" in wanted:
                    targets.append(sshfs_target(server, data, root))

                results = {}
                for target in targets:
                    print(f"measuring {target.name} ...", flush=True)
                    results[target.name] = measure(
                        target, "big.bin", "many", args.repeat, warm_source
                    )
                    print(f"  {results[target.name]}", flush=True)

    table = render(
        results,
        command,
        f"{args.size_mib} MiB sequential read, ls -l of {args.files} files, median of {args.repeat}",
    )
    print(table)
    with open(args.results, "a") as fh:
        fh.write("\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
