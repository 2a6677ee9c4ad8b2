"""The workers the daemon knows of, one per volume: serving a mount, or unmounted
and lingering for the volume's next Mount. Spawned ones are watched (their exit
is logged, an unexpected one as an error) through their pidfd (the fork server
forked them, not this daemon); adopted ones (after a daemon restart) are checked
through the volume's lock."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from adapters.mounting.fork_client import ForkedWorker
from adapters.mounting.spawning import read_tail, with_tail
from adapters.mounting.system import is_mounted, is_stale


class CrashedWorkers:
    """The pids of workers this daemon saw die unexpectedly. The metrics' watch
    (`worker_watch`) reads it: the dead mount that told it of a crash is taken off
    the host at once (`_clear_dead_mount`), sometimes before it looks."""

    def __init__(self) -> None:
        self._pids: set[int] = set()
        self._lock = threading.Lock()  # watcher threads add, the event loop reads

    def add(self, pid: int) -> None:
        with self._lock:
            self._pids.add(pid)

    def __contains__(self, pid: object) -> bool:
        with self._lock:
            return pid in self._pids


CRASHED = CrashedWorkers()  # one daemon per process


@dataclass
class KnownWorker:
    name: str
    mountpoint: str
    pid: int
    process: ForkedWorker | None  # None for a worker adopted after a restart
    log: str
    serving: bool  # False: unmounted, still there for the next Mount
    expected_exit: bool = False

    def child_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class WorkerRegistry:
    def __init__(self, lock_holder: Callable[[str], int | None]) -> None:
        self._lock_holder = lock_holder  # volume name -> pid holding its lock
        self._known: dict[str, KnownWorker] = {}

    def serving(self, name: str) -> KnownWorker | None:
        worker = self._known.get(name)
        return worker if worker is not None and worker.serving else None

    def add(self, worker: KnownWorker) -> None:
        self._known[worker.name] = worker

    def watch(self, worker: KnownWorker) -> None:
        """Wait for a worker this daemon started, in a thread, and say why it went."""
        assert worker.process is not None
        threading.Thread(
            target=_watch, args=(worker, worker.process), name=f"watch-{worker.name}", daemon=True
        ).start()

    def unmounted(self, name: str) -> KnownWorker | None:
        """The volume's serving worker, now lingering: it exits by itself once it
        stops lingering."""
        worker = self.serving(name)
        if worker is not None:
            worker.serving, worker.expected_exit = False, True
        return worker

    def take_lingering(self, name: str) -> KnownWorker | None:
        worker = self._known.get(name)
        if worker is None or worker.serving:
            return None
        del self._known[name]
        return worker

    def take_serving(self, name: str) -> KnownWorker | None:
        worker = self.serving(name)
        if worker is not None:
            del self._known[name]
            worker.expected_exit = True
        return worker

    def names(self) -> list[str]:
        return list(self._known)

    def workers(self, *, serving: bool) -> list[KnownWorker]:
        return [w for w in self._known.values() if w.serving is serving]

    def reap(self) -> None:
        """Forget workers that are gone; those this process spawned are reported by
        their watcher thread, adopted ones here (they are not our children)."""
        for name, worker in list(self._known.items()):
            if worker.process is not None:
                gone = worker.process.poll() is not None
            else:
                gone = self._lock_holder(name) != worker.pid
            if not gone:
                continue
            del self._known[name]
            if worker.serving and worker.process is None:
                logger.error(
                    "adopted mount worker {} for volume {} is gone{}",
                    worker.pid,
                    name,
                    with_tail(read_tail(worker.log)),
                )


def _watch(worker: KnownWorker, proc: ForkedWorker) -> None:
    code = proc.wait()
    if worker.expected_exit:
        logger.info("mount worker {} for {} exited ({})", worker.pid, worker.name, code)
        return
    logger.error(
        "mount worker {} for volume {} died with exit code {}{}",
        worker.pid,
        worker.name,
        code,
        with_tail(read_tail(worker.log)),
    )
    CRASHED.add(worker.pid)
    if worker.serving:
        _clear_dead_mount(worker)


def _clear_dead_mount(worker: KnownWorker) -> None:
    """Take the dead worker's FUSE mount off the host at once, so that nothing there
    meets "Transport endpoint is not connected". Containers still running keep
    their own view of it (Docker's bind mount), and see that error until they
    stop; the volume's next Mount starts a new worker, which uploads what the dead
    one left dirty in the cache. A mount that answers (a new worker's) is left."""
    mp = worker.mountpoint
    if not (is_mounted(mp) and is_stale(mp)):
        return
    for argv in (["fusermount3", "-u", "-z", mp], ["umount", "-l", mp]):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(argv, check=False, capture_output=True, timeout=30)
        if not is_mounted(mp):
            logger.warning("took the dead FUSE mount of volume {} off {}", worker.name, mp)
            return
    logger.error("cannot take the dead FUSE mount of volume {} off {}", worker.name, mp)
