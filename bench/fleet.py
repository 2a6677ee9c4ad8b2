"""Scenarios of issue 10: many volumes at once, and what a Mount costs.

volumes  N SFTP volumes (--volume-counts, default 1,10,50), each mounted by an idle
         container; the N `docker run -d` are started at once (rclone's one after
         another: see `_fleet`). Per plugin: the time
         until every container runs, the longest `VolumeDriver.List` answer meanwhile
         (polled all along on the plugin's socket), then the total PSS of the
         plugin's processes (smaps_rollup of the daemon and every process below it:
         cloudvol's fork server and workers; rclone's single process).
streams  10 SFTP volumes, each held by an idle container, all read the --size-mib
         file at once from their host mountpoints: the peak total PSS of the
         plugin's processes meanwhile (sampled every 0.1 s), default flags.
mount    Docker's Mount + Unmount per `docker run` (Docker mounts a volume twice per
         run): `docker run -v vol:/data true` on a fresh volume, and on a volume
         used before (its worker lingering), against an empty container.
"""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import subprocess
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from bench.harness import Bench, VolumeTarget, read_whole, timed, unique
from bench.report import Figure, Result
from bench.scenarios import Config, attempt, big_file, median_of, result

_LIST_POLL = 0.02  # seconds between List calls while containers start


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def list_seconds(plugin_socket: Path, timeout: float = 60) -> float:
    """One `VolumeDriver.List` call, as Docker makes it; an answer that does not
    come within `timeout` counts as `timeout` (rclone holds List while it mounts)."""
    conn = _UnixHTTPConnection(plugin_socket, timeout=timeout)
    start = time.perf_counter()
    try:
        conn.request(
            "POST",
            "/VolumeDriver.List",
            body=b"{}",
            headers={"Content-Type": "application/vnd.docker.plugins.v1+json"},
        )
        json.loads(conn.getresponse().read())
    except TimeoutError:
        pass
    finally:
        conn.close()
    return time.perf_counter() - start


@contextmanager
def longest_list(plugin_socket: Path) -> Iterator[list[float]]:
    """Polls List until the block ends; the list yielded holds every answer's time."""
    times: list[float] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            times.append(list_seconds(plugin_socket))
            done.wait(_LIST_POLL)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield times
    finally:
        done.set()
        thread.join(timeout=120)


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def pss_mib(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0  # exited meanwhile
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def _plugin(bench: Bench, name: str) -> Iterator[tuple[VolumeTarget, int, Path]]:
    """The target, the root pid of its processes and its plugin socket. rclone is
    a fresh daemon for each fleet, stopped after it: one that many parallel Mounts
    wedged (as 1.60.1 can be) must not hold up the next measurement."""
    if name == "cloudvol":
        target = bench.cloudvol_target(None)
        daemon = bench.start_cloudvol()
        assert daemon.proc is not None
        yield target, daemon.proc.pid, daemon.socket
        return
    rclone = bench.start_rclone(fresh=True)
    try:
        assert rclone.proc is not None
        yield bench.rclone_target(None, rclone), rclone.proc.pid, rclone.socket
    finally:
        rclone.stop()


def _fleet(bench: Bench, name: str, count: int) -> tuple[Figure, Figure, Figure, Figure]:
    """(seconds until all run, longest List in ms, total PSS MiB, processes)."""
    with _plugin(bench, name) as (target, root_pid, plugin_socket):
        # rclone 1.60.1 takes Mounts one at a time: of 10 started at once, Docker gave
        # up on 6, and then rclone answered nothing more (Remove, Create and List
        # hung). Its volumes are therefore mounted one after another.
        parallel = name == "cloudvol"
        return _measure_fleet(bench, target, root_pid, plugin_socket, count, parallel=parallel)


def _measure_fleet(
    bench: Bench,
    target: VolumeTarget,
    root_pid: int,
    plugin_socket: Path,
    count: int,
    *,
    parallel: bool,
) -> tuple[Figure, Figure, Figure, Figure]:
    remote = bench.sftp
    names = [unique("fleet") for _ in range(count)]
    for i, volume in enumerate(names):
        remote.make_dir(f"fleet/{i}")
        bench.docker.run(
            "volume", "create", "-d", target.driver, *remote.options(f"fleet/{i}"), volume
        )
    holders = [f"{v}-holder" for v in names]
    try:
        with longest_list(plugin_socket) as list_times:
            start = time.monotonic()
            if parallel:
                runs = [
                    _start_holder(bench, volume, holder)
                    for volume, holder in zip(names, holders, strict=True)
                ]
            else:
                runs = []
                for volume, holder in zip(names, holders, strict=True):
                    runs.append(_start_holder(bench, volume, holder))
                    runs[-1].wait(timeout=600)
            failed = [h for p, h in zip(runs, holders, strict=True) if p.wait(timeout=600)]
            all_running = time.monotonic() - start
        if failed:
            raise RuntimeError(f"{len(failed)} of {count} containers did not start")
        at_once = Figure(all_running, "" if parallel else "one at a time")
        pids = process_tree(root_pid)
        total = sum(pss_mib(pid) for pid in pids)
        return (
            at_once,
            Figure(max(list_times) * 1000),
            Figure(total),
            Figure(float(len(pids))),
        )
    finally:
        _remove_all(bench, holders, "rm", "-f")
        _remove_all(bench, names, "volume", "rm", "-f")
        for volume in names:
            target.settle(volume)


def _start_holder(bench: Bench, volume: str, holder: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "docker", "-H", f"unix://{bench.docker.socket}", "run", "-d", "--name", holder,
            "--network", "none", "-v", f"{volume}:/data", bench.docker.image, "sleep", "36000",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _remove_all(bench: Bench, names: list[str], *command: str) -> None:
    for i in range(0, len(names), 10):
        try:
            bench.docker.run(*command, *names[i : i + 10], check=False, timeout=180)
        except subprocess.TimeoutExpired:
            print(f"  docker {' '.join(command)} did not answer within 180 s", flush=True)


def _fleet_figures(bench: Bench, name: str, count: int) -> tuple[Figure, ...]:
    print(f"  {name}, {count} volumes ...", flush=True)
    try:
        figures = _fleet(bench, name, count)
    except Exception as e:
        traceback.print_exc()
        figures = (Figure.failed(e),) * 4
    print(f"  {name}, {count} volumes: {', '.join(f.show(1) for f in figures)}", flush=True)
    return figures


def many_volumes(bench: Bench, cfg: Config) -> list[Result]:
    results: list[Result] = []
    targets = ["cloudvol"] + (["rclone"] if "rclone" in cfg.targets else [])
    for count in cfg.volume_counts:
        measured = {name: _fleet_figures(bench, name, count) for name in targets}
        rows = (
            (f"{count} `docker run -d` at once, each with its SFTP volume, until all run",
             "s", 2),
            (f"longest VolumeDriver.List answer meanwhile (aim: under 100 ms), {count} volume(s)",
             "ms", 1),
            (f"total PSS of the plugin's processes, {count} volume(s) held by idle containers",
             "MiB", 1),
            (f"the plugin's processes, {count} volume(s)", "count", 0),
        )  # fmt: skip
        for index, (title, unit, digits) in enumerate(rows):
            row = {name: figures[index] for name, figures in measured.items()}
            results.append(result(title, unit, False, row, {}, digits))
    return results


def mount_latency(bench: Bench, cfg: Config) -> list[Result]:
    remote = bench.sftp
    image = bench.docker.image
    repeat = max(cfg.repeat, 5)

    def run(*args: str) -> float:
        return timed(
            lambda: bench.docker.run("run", "--rm", "--network", "none", *args, timeout=300)
        )

    def fresh(target: VolumeTarget) -> Figure:
        def once() -> float:
            with bench.volume(target, remote) as name:
                return run("-v", f"{name}:/data", image, "true")

        return median_of(repeat, once)

    def reused(target: VolumeTarget) -> Figure:
        with bench.volume(target, remote) as name:
            run("-v", f"{name}:/data", image, "true")
            return Figure(
                statistics.median(run("-v", f"{name}:/data", image, "true") for _ in range(repeat))
            )

    baseline = attempt("empty container", lambda: median_of(repeat, lambda: run(image, "true")))
    results = [
        Result("docker run of an empty container (part of the figures below)", "s", False, baseline)
    ]
    for title, measure in (
        ("docker run with a fresh volume (Create, Mount + Unmount, Remove)", fresh),
        ("docker run with a volume used before (Mount + Unmount)", reused),
    ):
        figures = {
            "cloudvol": attempt(f"cloudvol: {title}", partial(measure, bench.cloudvol_target(None)))
        }
        if "rclone" in cfg.targets:
            figures["rclone"] = attempt(
                f"rclone: {title}", partial(measure, bench.rclone_target(None))
            )
        results.append(result(title, "s", False, figures, {}))
    return results


_STREAMS = 10
_SAMPLE_EVERY = 0.1


def _peak_while_streaming(bench: Bench, name: str, big: str) -> Figure:
    with _plugin(bench, name) as (target, root_pid, _socket):
        remote = bench.sftp
        names = [unique("stream") for _ in range(_STREAMS)]
        holders = [f"{v}-holder" for v in names]
        for volume in names:
            bench.docker.run("volume", "create", "-d", target.driver, *remote.options(""), volume)
        try:
            for volume, holder in zip(names, holders, strict=True):
                if _start_holder(bench, volume, holder).wait(timeout=600):
                    raise RuntimeError(f"{volume} did not mount")
            mountpoints = [
                Path(
                    bench.docker.run("volume", "inspect", "-f", "{{.Mountpoint}}", v).stdout.strip()
                )
                for v in names
            ]
            readers = [
                threading.Thread(target=read_whole, args=(mp / big,), daemon=True)
                for mp in mountpoints
            ]
            peak = 0.0
            for reader in readers:
                reader.start()
            while any(r.is_alive() for r in readers):
                peak = max(peak, sum(pss_mib(pid) for pid in process_tree(root_pid)))
                time.sleep(_SAMPLE_EVERY)
            return Figure(peak)
        finally:
            _remove_all(bench, holders, "rm", "-f")
            _remove_all(bench, names, "volume", "rm", "-f")
            for volume in names:
                target.settle(volume)


def streaming_memory(bench: Bench, cfg: Config) -> list[Result]:
    big = big_file(bench.sftp, cfg.size_mib)
    targets = ["cloudvol"] + (["rclone"] if "rclone" in cfg.targets else [])
    figures = {
        name: attempt(
            f"{name}, {_STREAMS} streams", partial(_peak_while_streaming, bench, name, big)
        )
        for name in targets
    }
    title = (
        f"peak total PSS while {_STREAMS} volumes each read {cfg.size_mib} MiB at once,"
        " default flags"
    )
    return [result(title, "MiB", False, figures, {}, 1)]


FLEET_SCENARIOS = {"volumes": many_volumes, "streams": streaming_memory, "mount": mount_latency}
