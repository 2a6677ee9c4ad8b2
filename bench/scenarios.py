"""The benchmark scenarios of issue 4 (SFTP) and issue 3 (S3), each measuring cloudvol
and its references on the same remote in the same run. A scenario returns `Result`s;
a target that fails is reported as failed in its cell and the others still run.

read, write and list are each written once and run per backend: `read` on the SFTP
remote, `s3-read` on the S3 one (see `BACKENDS`)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.harness import (
    Bench,
    MiB,
    Remote,
    VolumeTarget,
    drop_page_cache,
    random_file,
    read_whole,
    timed,
    unique,
    vm_hwm_mib,
)
from bench.report import Comparison, Figure, Result


@dataclass(frozen=True)
class Config:
    size_mib: int  # the file read sequentially, re-read from the cache, streamed for memory
    write_mib: int  # the file written in a container
    small_files: int  # files written then read in one container
    files: int  # files in the listed directory (objects under the listed prefix on S3)
    s3_mib: int  # the object read, and the one written, on S3
    repeat: int
    undelivered_wait: float  # how long after the container exits a write may take to arrive
    targets: frozenset[str]  # of cloudvol, rclone, sshfs
    volume_counts: tuple[int, ...] = (1, 10, 50)  # the volumes scenario's fleets (bench/fleet.py)


Mount = Callable[[], contextlib.AbstractContextManager[tuple[Path, int]]]


def attempt(label: str, measure: Callable[[], Figure]) -> Figure:
    """Run one target's measurement; a failure becomes the figure, not the end of the run."""
    print(f"  {label} ...", flush=True)
    try:
        figure = measure()
    except Exception as e:
        traceback.print_exc()
        figure = Figure.failed(e)
    print(f"  {label}: {figure.show(3)}", flush=True)
    return figure


def median_of(repeat: int, once: Callable[[], float]) -> Figure:
    return Figure(statistics.median(once() for _ in range(repeat)))


# ----- files on the remote ----------------------------------------------------------------


def big_file(remote: Remote, mib: int) -> str:
    path = f"big-{mib}.bin"
    if not remote.exists(path):
        print(f"making a {mib} MiB file on the {remote.name} remote ...", flush=True)
        remote.put_random(path, mib * MiB)
    return path


def listing_dir(remote: Remote, cfg: Config) -> str:
    path = f"many-{cfg.files}"
    if not remote.exists(path):
        print(f"making {cfg.files} files on the {remote.name} remote ...", flush=True)
        remote.put_files(path, {f"file-{i:05d}.txt": b"x" * (i % 512) for i in range(cfg.files)})
    return path


def source_dir(bench: Bench) -> Path:
    """Host files bind-mounted read-only into containers as /src."""
    path = bench.root / "src"
    path.mkdir(exist_ok=True)
    return path


# ----- mounts seen from the host --------------------------------------------------------


def held_mount(bench: Bench, target: VolumeTarget, remote: Remote, path: str = "") -> Mount:
    @contextlib.contextmanager
    def mount() -> Iterator[tuple[Path, int]]:
        with bench.held(target, remote, path) as (mountpoint, name):
            yield mountpoint, target.pid_of(name)

    return mount


def sshfs_mount(bench: Bench, path: str = "") -> Mount:
    return lambda: bench.sshfs(path)


def off_mode_mounts(bench: Bench, cfg: Config, remote: Remote) -> dict[str, Mount]:
    """cloudvol and its references with default flags (cache mode off) on `remote`'s root;
    sshfs only on the SFTP remote."""
    mounts = {"cloudvol": held_mount(bench, bench.cloudvol_target(None), remote)}
    if "rclone" in cfg.targets:
        mounts["rclone (off)"] = held_mount(bench, bench.rclone_target(None), remote)
    if "sshfs" in cfg.targets and remote.name == "sftp":
        mounts["sshfs"] = sshfs_mount(bench)
    return mounts


def result(
    scenario: str,
    unit: str,
    higher_is_better: bool,
    figures: dict[str, Figure],
    goals: dict[str, str],
    digits: int = 2,
) -> Result:
    ours = figures.pop(next(k for k in figures if k.startswith("cloudvol")))
    comparisons = [Comparison(label, fig, goals.get(label, "")) for label, fig in figures.items()]
    return Result(scenario, unit, higher_is_better, ours, comparisons, digits)


# ----- the scenarios --------------------------------------------------------------------


def sequential_read(bench: Bench, cfg: Config, backend: str) -> list[Result]:
    remote = bench.remote(backend)
    mib = cfg.s3_mib if backend in ("s3", "crypt") else cfg.size_mib
    big = big_file(remote, mib)

    def measure(mount: Mount) -> Figure:
        def once() -> float:
            with mount() as (mountpoint, _pid):
                drop_page_cache()
                remote.warm(big)  # the server reads from memory: measure the transport
                return mib / timed(lambda: read_whole(mountpoint / big))

        return median_of(cfg.repeat, once)

    figures = {
        label: attempt(label, partial(measure, mount))
        for label, mount in off_mode_mounts(bench, cfg, remote).items()
    }
    goals = {
        "sftp": {"rclone (off)": ">= 1.3x", "sshfs": "aim 1.0x"},
        "s3": {"rclone (off)": ">= 1.0x"},
        "crypt": {"rclone (off)": ">= 1.0x (aim 1.5x)"},
    }
    return [
        result(
            f"{prefix(backend)}sequential read of {mib} MiB, cache mode off",
            "MiB/s",
            True,
            figures,
            goals[backend],
        )
    ]


def listing(bench: Bench, cfg: Config, backend: str) -> list[Result]:
    remote = bench.remote(backend)
    directory = listing_dir(remote, cfg)

    def ls(path: Path) -> float:
        return timed(
            lambda: subprocess.run(["ls", "-l", str(path)], check=True, capture_output=True)
        )

    def measure(mount: Mount, warm: list[float]) -> Figure:
        cold = []
        for _ in range(cfg.repeat):
            with mount() as (mountpoint, _pid):
                cold.append(ls(mountpoint / directory))
                warm.append(ls(mountpoint / directory))
        return Figure(statistics.median(cold))

    colds: dict[str, Figure] = {}
    warms: dict[str, Figure] = {}
    for label, mount in off_mode_mounts(bench, cfg, remote).items():
        warm: list[float] = []
        colds[label] = attempt(f"{label} (cold, then warm)", partial(measure, mount, warm))
        warms[label] = Figure(statistics.median(warm)) if warm else colds[label]
    what = f"{prefix(backend)}ls -l of {cfg.files} {'objects under a prefix' if backend == 's3' else 'files'}"
    return [
        result(f"{what}, cold", "s", False, colds, LIST_GOALS.get(backend, {}), 3),
        result(f"{what}, warm", "s", False, warms, {}, 3),
    ]


def _await_delivery(
    proc: subprocess.Popen[bytes],
    remote: Remote,
    path: str,
    size: int,
    md5: str,
    start: float,
    cfg: Config,
) -> Figure:
    """Seconds from `start` until `path` on `remote` has `size` bytes of the right content.

    The clock stops when the size is right; the md5 (not timed) must then match,
    else polling goes on. A container that exited `undelivered_wait` ago without
    the file whole on the remote gives "not delivered"."""
    exited_at: float | None = None
    while True:
        now = time.perf_counter()
        if exited_at is None and proc.poll() is not None:
            exited_at = now
            if proc.returncode != 0:
                assert proc.stderr is not None
                raise RuntimeError(f"container failed: {proc.stderr.read().decode().strip()}")
        if remote.size(path) == size:
            if remote.md5(path) == md5:
                proc.wait(timeout=600)
                return Figure(now - start)
        if exited_at is not None and now - exited_at > cfg.undelivered_wait:
            return Figure(None, f"not delivered within {cfg.undelivered_wait:g} s")
        time.sleep(0.05)


DataMount = Callable[[str], contextlib.AbstractContextManager[str]]  # path -> docker -v source


def sequential_write(bench: Bench, cfg: Config, backend: str) -> list[Result]:
    """On SFTP cloudvol in cache mode writes against rclone in mode off (and once in
    mode writes) and sshfs; on S3 cloudvol in its default mode off, which streams,
    against rclone in mode off."""
    remote = bench.remote(backend)
    mib = cfg.s3_mib if backend in ("s3", "crypt") else cfg.write_mib
    src = source_dir(bench)
    size = mib * MiB
    md5 = random_file(src / f"write-{mib}.bin", size)
    image = bench.docker.image

    def write_once(data_mount: DataMount) -> float | Figure:
        remote_dir = unique("w")
        remote.make_dir(remote_dir)
        try:
            with data_mount(remote_dir) as source:
                start = time.perf_counter()
                proc = bench.container(
                    "-v", f"{source}:/data", "-v", f"{src}:/src:ro", image,
                    "dd", f"if=/src/write-{mib}.bin", "of=/data/out", "bs=1M",
                )  # fmt: skip
                try:
                    figure = _await_delivery(
                        proc, remote, f"{remote_dir}/out", size, md5, start, cfg
                    )
                finally:
                    if proc.poll() is None:
                        proc.kill()
                    proc.wait()
                return figure.value if figure.value is not None else figure
        finally:
            remote.remove_tree(remote_dir)

    def measure(data_mount: DataMount, repeat: int) -> Figure:
        times = []
        for _ in range(repeat):
            outcome = write_once(data_mount)
            if isinstance(outcome, Figure):
                return outcome  # not delivered: once is enough
            times.append(outcome)
        return Figure(statistics.median(times), "one run" if repeat == 1 < cfg.repeat else "")

    def volume(target: VolumeTarget) -> DataMount:
        return lambda path: bench.volume(target, remote, path)

    @contextlib.contextmanager
    def sshfs(path: str) -> Iterator[str]:
        with bench.sshfs(path) as (mountpoint, _pid):
            yield str(mountpoint)

    ours = "writes" if backend == "sftp" else None  # None: the default, mode off
    ours_label = f"cloudvol ({ours or 'off, default'})"
    figures = {
        "cloudvol": attempt(
            ours_label, lambda: measure(volume(bench.cloudvol_target(ours)), cfg.repeat)
        )
    }
    if "rclone" in cfg.targets:
        figures["rclone (off)"] = attempt(
            "rclone (off)", lambda: measure(volume(bench.rclone_target("off")), cfg.repeat)
        )
        if backend == "sftp":
            # Never delivered once the container exits (issue 4): one bounded try shows it.
            figures["rclone (writes)"] = attempt(
                "rclone (writes)", lambda: measure(volume(bench.rclone_target("writes")), 1)
            )
    if "sshfs" in cfg.targets and backend == "sftp":
        figures["sshfs"] = attempt("sshfs", lambda: measure(sshfs, cfg.repeat))
    where = "in the bucket" if backend == "s3" else "on the remote"
    mode = "writes" if ours else "off (default, streams)"
    goals = {
        "sftp": {"rclone (off)": ">= 1.3x"},
        "s3": {"rclone (off)": ">= 1.0x"},
        "crypt": {"rclone (off)": ">= 1.0x (aim 1.5x)"},
    }
    return [
        result(
            f"{prefix(backend)}sequential write of {mib} MiB in a container until whole {where},"
            f" cloudvol in cache mode {mode}",
            "s",
            False,
            figures,
            goals[backend],
        )
    ]


def small_files(bench: Bench, cfg: Config) -> list[Result]:
    src = source_dir(bench)
    (src / "blob").write_bytes(b"0123456789abcdef" * 128)  # 2 KiB
    n = cfg.small_files
    script = (
        f"mkdir /data/s && i=0 && while [ $i -lt {n} ]; do head -c 2048 /src/blob > /data/s/f$i;"
        " i=$((i+1)); done && cat /data/s/* > /dev/null"
    )
    image = bench.docker.image

    def run(*args: str) -> float:
        def go() -> None:
            proc = bench.container(*args)
            _, err = proc.communicate(timeout=1800)
            if proc.returncode != 0:
                raise RuntimeError(f"container failed: {err.decode().strip()}")

        return timed(go)

    remote = bench.sftp

    def on_volume(target: VolumeTarget) -> Figure:
        def once() -> float:
            remote_dir = unique("s")
            remote.make_dir(remote_dir)
            try:
                with bench.volume(target, remote, remote_dir) as name:
                    return run(
                        "-v", f"{name}:/data", "-v", f"{src}:/src:ro", image, "sh", "-c", script
                    )
            finally:
                remote.remove_tree(remote_dir)

        return median_of(cfg.repeat, once)

    def on_sshfs() -> Figure:
        def once() -> float:
            remote_dir = unique("s")
            remote.make_dir(remote_dir)
            try:
                with bench.sshfs(remote_dir) as (mountpoint, _pid):
                    return run(
                        "-v",
                        f"{mountpoint}:/data",
                        "-v",
                        f"{src}:/src:ro",
                        image,
                        "sh",
                        "-c",
                        script,
                    )
            finally:
                remote.remove_tree(remote_dir)

        return median_of(cfg.repeat, once)

    def mount_only(target: VolumeTarget) -> Figure:
        def once() -> float:
            with bench.volume(target, remote) as name:
                return run("-v", f"{name}:/data", image, "true")

        return median_of(cfg.repeat, once)

    baseline = attempt("empty container", lambda: median_of(cfg.repeat, lambda: run(image, "true")))
    results = [
        Result(
            "docker run of an empty container (part of every figure below)", "s", False, baseline
        )
    ]
    # How much of each figure is Docker's Mount and Unmount of a fresh volume.
    mounting = {
        "cloudvol": attempt(
            "cloudvol, mount only", partial(mount_only, bench.cloudvol_target(None))
        )
    }
    if "rclone" in cfg.targets:
        mounting["rclone (off)"] = attempt(
            "rclone, mount only", partial(mount_only, bench.rclone_target(None))
        )
    results.append(
        result("the same with a fresh volume mounted (Mount + Unmount)", "s", False, mounting, {})
    )
    sshfs = attempt("sshfs", on_sshfs) if "sshfs" in cfg.targets else None
    goals = {"writes": ">= 1.0x (aim 1.43x)", "off": ">= 5x"}
    for mode in ("writes", "off"):
        figures = {
            "cloudvol": attempt(
                f"cloudvol ({mode})", partial(on_volume, bench.cloudvol_target(mode))
            )
        }
        if "rclone" in cfg.targets:
            figures[f"rclone ({mode})"] = attempt(
                f"rclone ({mode})", partial(on_volume, bench.rclone_target(mode))
            )
        if sshfs is not None:
            figures["sshfs"] = sshfs
        results.append(
            result(
                f"{n} small files written then read in one container, cache mode {mode}",
                "s",
                False,
                figures,
                {f"rclone ({mode})": goals[mode]},
            )
        )
    return results


def cached_reread(bench: Bench, cfg: Config) -> list[Result]:
    remote = bench.sftp
    big = big_file(remote, cfg.size_mib)
    mib = cfg.size_mib

    def local() -> float:
        drop_page_cache()
        return mib / timed(lambda: read_whole(remote.local(big)))

    def measure(target: VolumeTarget) -> Figure:
        with bench.held(target, remote) as (mountpoint, _name):
            read_whole(mountpoint / big)  # fills the cache

            def once() -> float:
                drop_page_cache()  # the re-read comes from the cache file on disk
                return mib / timed(lambda: read_whole(mountpoint / big))

            return median_of(cfg.repeat, once)

    figures = {
        "cloudvol": attempt("cloudvol (full)", lambda: measure(bench.cloudvol_target("full")))
    }
    figures["local disk"] = attempt("local disk", lambda: median_of(cfg.repeat, local))
    if "rclone" in cfg.targets:
        figures["rclone (full)"] = attempt(
            "rclone (full)", lambda: measure(bench.rclone_target("full"))
        )
    return [
        result(
            f"re-read of a cached {cfg.size_mib} MiB file, cache mode full (page cache dropped)",
            "MiB/s",
            True,
            figures,
            {"local disk": ">= 0.5x"},
        )
    ]


def peak_memory(bench: Bench, cfg: Config) -> list[Result]:
    remote = bench.sftp
    big = big_file(remote, cfg.size_mib)

    def measure(mount: Mount) -> Figure:
        with mount() as (mountpoint, pid):
            read_whole(mountpoint / big)
            return Figure(vm_hwm_mib(pid))

    figures = {
        "cloudvol": attempt(
            "cloudvol", lambda: measure(held_mount(bench, bench.cloudvol_target(None), remote))
        )
    }
    if "rclone" in cfg.targets:

        def rclone() -> Figure:
            daemon = bench.start_rclone(fresh=True)  # its peak so far is this stream's alone
            try:
                return measure(held_mount(bench, bench.rclone_target(None, daemon), remote))
            finally:
                daemon.stop()

        figures["rclone (whole process)"] = attempt("rclone", rclone)
    if "sshfs" in cfg.targets:
        figures["sshfs"] = attempt("sshfs", lambda: measure(sshfs_mount(bench)))
    return [
        result(
            f"peak memory (VmHWM) of the mount worker streaming {cfg.size_mib} MiB,"
            " default flags (aim: under 100 MB)",
            "MiB",
            False,
            figures,
            {},
            1,
        )
    ]


TAR_FILES = 5000  # issue 11's tree


def tar_extract(bench: Bench, cfg: Config) -> list[Result]:
    """Issue 11: `tar -x` in a container of a TAR_FILES-file tree (100 directories
    of 1-4 KiB files) into a fresh volume, cache mode writes, against rclone in
    mode writes and sshfs; the figure is the container's run (uploads continue
    after it in writes mode, for cloudvol and rclone alike)."""
    src = source_dir(bench)
    archive = src / f"tree-{TAR_FILES}.tar"
    if not archive.exists():
        tree = bench.root / "tar-tree"
        for i in range(TAR_FILES):
            directory = tree / f"d{i % 100:03d}"
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"f{i:05d}").write_bytes(os.urandom(1024 + (i % 4) * 1024))
        subprocess.run(["tar", "-cf", str(archive), "-C", str(tree), "."], check=True)
    image = bench.docker.image
    script = f"tar -xf /src/{archive.name} -C /data"
    remote = bench.sftp

    def run(*args: str) -> float:
        def go() -> None:
            proc = bench.container(*args)
            _, err = proc.communicate(timeout=3600)
            if proc.returncode != 0:
                raise RuntimeError(f"container failed: {err.decode().strip()}")

        return timed(go)

    def once(mount_data: Callable[[str], contextlib.AbstractContextManager[str]]) -> float:
        remote_dir = unique("t")
        remote.make_dir(remote_dir)
        try:
            with mount_data(remote_dir) as data:
                return run("-v", f"{data}:/data", "-v", f"{src}:/src:ro", image, "sh", "-c", script)
        finally:
            remote.remove_tree(remote_dir)

    def on_volume(target: VolumeTarget) -> Figure:
        return median_of(cfg.repeat, lambda: once(lambda d: bench.volume(target, remote, d)))

    @contextlib.contextmanager
    def sshfs_data(remote_dir: str) -> Iterator[str]:
        with bench.sshfs(remote_dir) as (mountpoint, _pid):
            yield str(mountpoint)

    figures = {
        "cloudvol": attempt(
            "cloudvol (writes)", partial(on_volume, bench.cloudvol_target("writes"))
        )
    }
    if "rclone" in cfg.targets:
        figures["rclone (writes)"] = attempt(
            "rclone (writes)", partial(on_volume, bench.rclone_target("writes"))
        )
    if "sshfs" in cfg.targets:
        figures["sshfs"] = attempt("sshfs", lambda: median_of(cfg.repeat, lambda: once(sshfs_data)))
    return [
        result(
            f"tar -x of {TAR_FILES} files (15 MiB) in a container, cache mode writes",
            "s",
            False,
            figures,
            {},
        )
    ]


STREAM_COUNTS = (1, 4, 16)
STREAM_CHUNK = "4M"  # rclone's suggestion for parallel streams on object stores


def chunk_streams(bench: Bench, cfg: Config, backend: str) -> list[Result]:
    """--vfs-read-chunk-streams 1, 4 and 16 (chunks of 4 MiB) against the default
    reader (no streams: pieces doubling up to 4 MiB, the read-ahead window in
    flight), one sequential reader, cache mode off."""
    remote = bench.remote(backend)
    mib = cfg.s3_mib if backend == "s3" else cfg.size_mib
    big = big_file(remote, mib)
    base = bench.cloudvol_target(None)

    def measure(target: VolumeTarget) -> Figure:
        mount = held_mount(bench, target, remote)

        def once() -> float:
            with mount() as (mountpoint, _pid):
                drop_page_cache()
                remote.warm(big)
                return mib / timed(lambda: read_whole(mountpoint / big))

        return median_of(cfg.repeat, once)

    default = attempt("cloudvol (no streams)", partial(measure, base))
    results = []
    for streams in STREAM_COUNTS:
        target = dataclasses.replace(
            base,
            label=f"cloudvol ({streams} streams)",
            options=(
                *("-o", f"vfs-read-chunk-streams={streams}"),
                *("-o", f"vfs-read-chunk-size={STREAM_CHUNK}"),
            ),
        )
        figures = {
            target.label: attempt(target.label, partial(measure, target)),
            "cloudvol (no streams)": default,
        }
        results.append(
            result(
                f"{prefix(backend)}sequential read of {mib} MiB with --vfs-read-chunk-streams "
                f"{streams} --vfs-read-chunk-size {STREAM_CHUNK}, cache mode off",
                "MiB/s",
                True,
                figures,
                {},
            )
        )
    return results


def prefix(backend: str) -> str:
    """How a scenario's row names its backend: SFTP rows keep their issue-4 names."""
    return {"s3": "S3: ", "crypt": "crypt over SFTP: ", "webdav": "WebDAV: "}.get(backend, "")


# Issue 13's target for listings (other backends' listings have none).
LIST_GOALS = {"webdav": {"rclone (off)": ">= 1.0x"}}


Scenario = Callable[[Bench, Config], list[Result]]

SCENARIOS: dict[str, Scenario] = {
    "read": partial(sequential_read, backend="sftp"),
    "write": partial(sequential_write, backend="sftp"),
    "small": small_files,
    "cached": cached_reread,
    "memory": peak_memory,
    "list": partial(listing, backend="sftp"),
    "s3-read": partial(sequential_read, backend="s3"),
    "s3-write": partial(sequential_write, backend="s3"),
    "s3-list": partial(listing, backend="s3"),
    "tar": tar_extract,  # issue 11; run by name (--scenarios tar)
    "streams": partial(chunk_streams, backend="sftp"),
    "s3-streams": partial(chunk_streams, backend="s3"),
    # issue 13: crypt over SFTP (--s3-mib sized) and WebDAV
    "crypt-read": partial(sequential_read, backend="crypt"),
    "crypt-write": partial(sequential_write, backend="crypt"),
    "webdav-list": partial(listing, backend="webdav"),
}
# The scenarios `--backend` selects.
BACKENDS: dict[str, list[str]] = {
    "sftp": ["read", "write", "small", "cached", "memory", "list"],
    "s3": ["s3-read", "s3-write", "s3-list"],
    "remotes": ["crypt-read", "crypt-write", "webdav-list"],
}
