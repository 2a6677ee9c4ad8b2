"""Model-based data integrity test (hypothesis stateful testing).

Random sequences of open/write/seek/read/truncate/close/rename go to files through
a real FUSE mount (a mount worker serving a local directory, the "remote") and to
an in-memory model; after every step the two must agree on contents, sizes and the
listing. One mount per cache mode serves every example, each in a directory of its
own that starts with a few files put straight on the remote (so full mode has
remote data to fetch in ranges). After the last example the volume is unmounted,
the worker drains its uploads and exits, and then the remote must hold exactly
what the model says, file for file.

Each mode's open rules (rclone's, `--vfs-cache-mode` in seed/rclone_serve_docker.md)
limit what the machine may do: with no cache a write-only handle is a sequential
stream that nothing else may share, and minimal only caches read+write opens. Mode
off is included because it works today and keeps the machine itself honest.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from adapters.mounting.manager import WorkerMountManager
from adapters.mounting.protocol import parse_mountinfo, worker_paths
from adapters.mounting.system import WorkerUnreachable, call_worker, is_mounted, lock_holder
from domain.volume import BackendSpec, Volume, VolumeSpec

NAMES = ("a", "b", "c")  # few, so that opens and renames often meet the same file
# Short, so that uploads run while later examples work on other files, and some
# files are still pending when the volume is unmounted (the drain must catch them).
WRITE_BACK = "1s"
DRAIN_TIMEOUT = 60.0
MAX_SEED = 600_000  # files put on the remote before an example: several read chunks
MAX_HANDLES = 3  # more open handles would crowd out the other rules

SETTINGS = settings(
    # Bounded for CI; raise it for a deeper search, e.g. CLOUDVOL_MODEL_EXAMPLES=500.
    max_examples=int(os.environ.get("CLOUDVOL_MODEL_EXAMPLES", "25")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@dataclass(frozen=True)
class ModeRules:
    read_write: bool  # O_RDWR opens are allowed (they go through the cache)
    cached_write_only: bool  # O_WRONLY opens go through the cache: seekable, any flags
    cached_reads: bool  # O_RDONLY opens go through the cache too


RULES = {
    "off": ModeRules(read_write=False, cached_write_only=False, cached_reads=False),
    "minimal": ModeRules(read_write=True, cached_write_only=False, cached_reads=False),
    "writes": ModeRules(read_write=True, cached_write_only=True, cached_reads=False),
    "full": ModeRules(read_write=True, cached_write_only=True, cached_reads=True),
}


# ----- the mount ----------------------------------------------------------------------


class MountedVolume:
    """A volume on a local directory, mounted by a real worker via WorkerMountManager."""

    def __init__(self, tmp: Path, mode: str) -> None:
        self.base, self.cache, self.remote = tmp / "mnt", tmp / "cache", tmp / "remote"
        for d in (self.base, self.cache, self.remote):
            d.mkdir()
        options = {"remote": str(self.remote), "vfs-cache-mode": mode}
        if mode != "off":
            options["vfs-write-back"] = WRITE_BACK
        self.volume = Volume(
            name=f"model-{mode}",
            mountpoint=str(self.base / f"model-{mode}"),
            created_at=datetime.now(UTC),
            options=options,
            spec=VolumeSpec(BackendSpec("local", str(self.remote))),
        )
        self.manager = WorkerMountManager(str(self.base), str(self.cache), {}, "INFO", None)
        self.paths = worker_paths(str(self.cache), self.volume.name)
        self.mountpoint = Path(self.volume.mountpoint)

    def mount(self) -> None:
        anyio.run(self.manager.mount, self.volume, backend="asyncio")
        assert is_mounted(str(self.mountpoint))

    def forget(self) -> None:
        """Mark the worker's directory listings stale (what SIGHUP does), so files put
        on the remote behind its back are seen."""
        reply = anyio.run(call_worker, self.paths.socket, "forget", backend="asyncio")
        assert reply.get("ok") is True, reply

    def unmount_and_drain(self) -> None:
        """Unmount as Docker's last Unmount would, then wait for the worker to
        finish its pending uploads: it then waits, idle, for the next mount (which
        it serves itself), or has exited."""
        anyio.run(self.manager.unmount, self.volume, backend="asyncio")
        assert not is_mounted(str(self.mountpoint)), "the mount did not go away at unmount"
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while lock_holder(self.paths.lock) is not None and self._worker_state() != "idle":
            assert time.monotonic() < deadline, (
                f"the worker did not finish its uploads within {DRAIN_TIMEOUT:g} s"
                f"\n{self.log_tail()}"
            )
            time.sleep(0.1)

    def _worker_state(self) -> str | None:
        try:
            reply = anyio.run(call_worker, self.paths.socket, "status", backend="asyncio")
        except WorkerUnreachable:
            return None
        return str(reply.get("state"))

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return "worker log:\n" + Path(self.paths.log).read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no worker log)"

    def cleanup(self) -> None:
        pid = lock_holder(self.paths.lock)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for entry in reversed(parse_mountinfo(Path("/proc/self/mountinfo").read_text())):
            if entry.mountpoint.startswith(str(self.base) + "/"):
                subprocess.run(["fusermount3", "-u", "-z", entry.mountpoint], check=False)


@contextlib.contextmanager
def mounted(tmp: Path, mode: str) -> Iterator[MountedVolume]:
    volume = MountedVolume(tmp, mode)
    try:
        volume.mount()
        yield volume
    finally:
        volume.cleanup()


# ----- the model ----------------------------------------------------------------------


@dataclass(eq=False)
class MFile:
    """An inode: handles keep pointing at it across renames."""

    data: bytearray = field(default_factory=bytearray)


@dataclass(eq=False)
class MHandle:
    fd: int
    file: MFile
    readable: bool
    writable: bool
    streaming: bool  # a write-only handle without the cache: sequential, exclusive
    append: bool
    pos: int = 0
    wrote: bool = False


def payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def read_fully(fd: int, size: int) -> bytes:
    """What a program reading `size` bytes gets: read(2) until that much or EOF."""
    chunks, left = [], size
    while left > 0:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def first_difference(a: bytes | bytearray, b: bytes | bytearray) -> str:
    at = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    return f"sizes {len(a)} vs {len(b)}, first difference at byte {at}"


indices = st.integers(0, 1_000)
seeds = st.integers(0, 2**32 - 1)


@dataclass(frozen=True)
class Example:
    """A finished example: what its directory must hold on the remote, and how it
    came to (hypothesis cannot replay a difference found after the unmount)."""

    files: dict[str, bytes]
    steps: list[str]


def flag_names(flags: int) -> str:
    names = [n for n in ("O_CREAT", "O_TRUNC", "O_APPEND") if flags & getattr(os, n)]
    access = {os.O_RDONLY: "O_RDONLY", os.O_WRONLY: "O_WRONLY", os.O_RDWR: "O_RDWR"}
    return "|".join([access[flags & os.O_ACCMODE], *names])


def noting_steps(fn: Callable[..., None]) -> Callable[..., None]:
    """Attach the example's steps so far to any failure: hypothesis cannot always
    replay a failure that depends on timing, and then prints the wrong steps."""

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            fn(self, *args, **kwargs)
        except Exception as e:
            note = "steps of this example:\n  " + "\n  ".join(self.steps)
            if note not in getattr(e, "__notes__", []):
                e.add_note(note)
            raise

    return wrapper


def machine_for(
    volume: MountedVolume, mode: str, expected: dict[str, Example]
) -> type[RuleBasedStateMachine]:
    rules = RULES[mode]
    counter = itertools.count()

    class FileMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.name = f"ex{next(counter):04d}"
            self.dir = volume.mountpoint / self.name
            self.files: dict[str, MFile] = {}
            self.handles: list[MHandle] = []
            self.steps: list[str] = []

        # --- helpers -------------------------------------------------------------

        def handles_on(self, f: MFile) -> list[MHandle]:
            return [h for h in self.handles if h.file is f]

        def may_open(self, f: MFile | None, readable: bool, writable: bool) -> bool:
            if f is None:
                return True
            others = self.handles_on(f)
            if any(h.streaming for h in others):
                return False  # a sequential stream to the remote shares with nobody
            streaming = writable and not readable and not rules.cached_write_only
            if streaming:
                return not others
            if writable and not rules.cached_reads:
                # A read-only handle opened before may be streaming from the remote.
                return not any(not h.writable for h in others)
            return True

        def log(self, step: str) -> None:
            self.steps.append(step)

        def pick(self, index: int, wanted: list[MHandle]) -> MHandle:
            return wanted[index % len(wanted)]

        def readable(self) -> list[MHandle]:
            return [h for h in self.handles if h.readable]

        def seekable(self) -> list[MHandle]:
            return [h for h in self.handles if not h.streaming]

        def resizable(self) -> list[MHandle]:
            return [h for h in self.handles if h.writable and not h.streaming]

        def renames(self) -> list[tuple[str, str]]:
            pairs = []
            for src, f in self.files.items():
                if any(h.streaming for h in self.handles_on(f)):
                    continue  # cache mode off uploads to the name of the first write
                for dst in NAMES:
                    target = self.files.get(dst)
                    if dst != src and (target is None or not self.handles_on(target)):
                        pairs.append((src, dst))
            return pairs

        # --- rules ---------------------------------------------------------------

        @initialize(
            seeded=st.lists(
                st.tuples(st.sampled_from(NAMES), st.integers(0, MAX_SEED), seeds),
                max_size=3,
                unique_by=lambda t: t[0],
            )
        )
        def start(self, seeded: list[tuple[str, int, int]]) -> None:
            on_remote = volume.remote / self.name
            on_remote.mkdir()
            for name, size, seed in seeded:
                data = payload(seed, size)
                (on_remote / name).write_bytes(data)
                self.files[name] = MFile(bytearray(data))
                self.log(f"on the remote: {name} ({size} bytes)")
            volume.forget()

        @precondition(lambda self: self.files and len(self.handles) < MAX_HANDLES)
        @rule(index=indices)
        @noting_steps
        def open_read(self, index: int) -> None:
            name = sorted(self.files)[index % len(self.files)]
            f = self.files[name]
            if not self.may_open(f, readable=True, writable=False):
                return
            fd = os.open(self.dir / name, os.O_RDONLY)
            self.log(f"fd {fd} = open({name}, O_RDONLY)")
            self.handles.append(MHandle(fd, f, True, False, False, False))

        @precondition(lambda self: len(self.files) < len(NAMES))
        @rule(index=indices, flags=st.sampled_from([os.O_RDONLY, os.O_WRONLY, os.O_RDWR]))
        @noting_steps
        def open_missing(self, index: int, flags: int) -> None:
            missing = [name for name in NAMES if name not in self.files]
            name = missing[index % len(missing)]
            if flags == os.O_RDWR and not rules.read_write:
                flags = os.O_WRONLY
            with pytest.raises(FileNotFoundError):
                os.open(self.dir / name, flags)

        @precondition(lambda self: len(self.handles) < MAX_HANDLES)
        @rule(
            name=st.sampled_from(NAMES),
            read_write=st.booleans(),
            create=st.booleans(),
            trunc=st.booleans(),
            append=st.booleans(),
        )
        @noting_steps
        def open_write(
            self, name: str, read_write: bool, create: bool, trunc: bool, append: bool
        ) -> None:
            read_write = read_write and rules.read_write
            streaming = not read_write and not rules.cached_write_only
            if streaming:
                # rclone: existing files must be opened with O_TRUNC, O_APPEND is ignored.
                create, trunc, append = True, True, False
            f = self.files.get(name)
            if not self.may_open(f, readable=read_write, writable=True):
                return
            flags = (os.O_RDWR if read_write else os.O_WRONLY) | (os.O_CREAT if create else 0)
            flags |= (os.O_TRUNC if trunc else 0) | (os.O_APPEND if append else 0)
            if f is None and not create:
                with pytest.raises(FileNotFoundError):
                    os.open(self.dir / name, flags)
                return
            fd = os.open(self.dir / name, flags, 0o644)
            self.log(f"fd {fd} = open({name}, {flag_names(flags)})")
            if f is None:
                f = self.files[name] = MFile()
            if trunc:
                f.data.clear()
            self.handles.append(MHandle(fd, f, read_write, True, streaming, append))

        def do_write(self, index: int, size: int, seed: int) -> None:
            h = self.pick(index, [h for h in self.handles if h.writable])
            data = payload(seed, size)
            self.log(f"write(fd {h.fd}, {size} bytes)")
            assert os.write(h.fd, data) == size
            if size == 0:
                return  # never reaches FUSE: the kernel neither moves the offset nor extends
            h.wrote = True
            if h.append:
                h.pos = len(h.file.data)
            end = h.pos + size
            if end > len(h.file.data):
                h.file.data.extend(bytes(end - len(h.file.data)))  # a hole reads as zeros
            h.file.data[h.pos : end] = data
            h.pos = end

        @precondition(lambda self: any(h.writable for h in self.handles))
        @rule(index=indices, size=st.integers(0, 300_000), seed=seeds)
        @noting_steps
        def write(self, index: int, size: int, seed: int) -> None:
            self.do_write(index, size, seed)  # across the kernel's 128 KiB pieces

        @precondition(lambda self: any(h.writable for h in self.handles))
        @rule(index=indices, size=st.integers(0, 4_096), seed=seeds)
        @noting_steps
        def write_small(self, index: int, size: int, seed: int) -> None:
            self.do_write(index, size, seed)

        @precondition(lambda self: any(not h.streaming for h in self.handles))
        @rule(
            index=indices, raw=st.integers(0, 2**20), whence=st.sampled_from(["set", "cur", "end"])
        )
        @noting_steps
        def seek(self, index: int, raw: int, whence: str) -> None:
            h = self.pick(index, self.seekable())
            size = len(h.file.data)
            target = raw % (size + 65_537)  # inside the file or up to 64 KiB past its end
            if whence == "set":
                got = os.lseek(h.fd, target, os.SEEK_SET)
            elif whence == "cur":
                got = os.lseek(h.fd, target - h.pos, os.SEEK_CUR)
            else:
                got = os.lseek(h.fd, target - size, os.SEEK_END)
            assert got == target
            self.log(f"lseek(fd {h.fd}, to {target})")
            h.pos = target

        def do_read(self, index: int, size: int) -> None:
            h = self.pick(index, self.readable())
            self.log(f"read(fd {h.fd}, {size} bytes at {h.pos})")
            want = bytes(h.file.data[h.pos : h.pos + size])
            got = read_fully(h.fd, size)
            assert got == want, f"read of {size} at {h.pos}: {first_difference(got, want)}"
            h.pos += len(got)

        @precondition(lambda self: any(h.readable for h in self.handles))
        @rule(index=indices, size=st.integers(1, 300_000))
        @noting_steps
        def read(self, index: int, size: int) -> None:
            self.do_read(index, size)

        @precondition(lambda self: any(h.readable for h in self.handles))
        @rule(index=indices)
        @noting_steps
        def read_to_end(self, index: int) -> None:
            self.do_read(index, 1 << 30)

        @precondition(lambda self: any(h.writable and not h.streaming for h in self.handles))
        @rule(index=indices, raw=st.integers(0, 2**20))
        @noting_steps
        def truncate(self, index: int, raw: int) -> None:
            h = self.pick(index, self.resizable())
            size = raw % (2 * len(h.file.data) + 65_537)  # shrink or grow
            self.log(f"ftruncate(fd {h.fd}, {size})")
            os.ftruncate(h.fd, size)
            if size < len(h.file.data):
                del h.file.data[size:]
            else:
                h.file.data.extend(bytes(size - len(h.file.data)))

        @precondition(lambda self: bool(self.handles))
        @rule(index=indices)
        @noting_steps
        def close(self, index: int) -> None:
            h = self.pick(index, self.handles)
            self.handles.remove(h)
            self.log(f"close(fd {h.fd})")
            os.close(h.fd)

        @precondition(lambda self: bool(self.renames()))
        @rule(index=indices)
        @noting_steps
        def rename(self, index: int) -> None:
            pairs = self.renames()
            src, dst = pairs[index % len(pairs)]
            self.log(f"rename({src}, {dst})")
            os.rename(self.dir / src, self.dir / dst)
            self.files[dst] = self.files.pop(src)

        # --- checks --------------------------------------------------------------

        def size_is_settled(self, f: MFile) -> bool:
            # Like rclone, a streaming write handle replaces the remote file at its
            # first write; until then the old size shows. Its data is what counts.
            return not any(h.streaming and not h.wrote for h in self.handles_on(f))

        @invariant()
        @noting_steps
        def mount_agrees(self) -> None:
            assert sorted(os.listdir(self.dir)) == sorted(self.files), "listing"
            for name, f in self.files.items():
                if self.size_is_settled(f):
                    size = os.stat(self.dir / name).st_size
                    assert size == len(f.data), f"stat({name}).st_size {size} != {len(f.data)}"
            for h in self.handles:
                if self.size_is_settled(h.file):
                    size = os.fstat(h.fd).st_size
                    assert size == len(h.file.data), f"fstat size {size} != {len(h.file.data)}"

        @noting_steps
        def teardown(self) -> None:
            errors = []
            while self.handles:  # all of them, even after a failure: see unmount_and_drain
                fd = self.handles.pop().fd
                self.log(f"close(fd {fd})")
                try:
                    os.close(fd)
                except OSError as e:
                    errors.append(e)
            if errors:
                raise errors[0]
            assert sorted(os.listdir(self.dir)) == sorted(self.files), "listing after close"
            for name, f in self.files.items():
                with open(self.dir / name, "rb") as fh:
                    got = fh.read()
                assert got == f.data, f"{name} after close: {first_difference(got, f.data)}"
            files = {name: bytes(f.data) for name, f in self.files.items()}
            expected[self.name] = Example(files, self.steps)

    return FileMachine


def check_remote(volume: MountedVolume, expected: dict[str, Example]) -> None:
    """After the drain, each example's directory on the remote must equal its model."""
    assert expected, "no example completed"
    for name, example in expected.items():
        on_remote = volume.remote / name

        def explain(problem: str, name: str = name, example: Example = example) -> str:
            steps = "\n  ".join(example.steps)
            return f"{name}: {problem}\nits steps:\n  {steps}\n{volume.log_tail()}"

        listing = sorted(os.listdir(on_remote))
        assert listing == sorted(example.files), explain(
            f"the remote holds {listing} after the drain, the model {sorted(example.files)}"
        )
        for file_name, data in example.files.items():
            got = (on_remote / file_name).read_bytes()
            assert got == data, explain(f"{file_name} on the remote: {first_difference(got, data)}")


@pytest.mark.parametrize("mode", list(RULES))
def test_files_agree_with_the_model_through_the_mount_and_on_the_remote(
    tmp_path: Path, mode: str
) -> None:
    expected: dict[str, Example] = {}
    with mounted(tmp_path, mode) as volume:
        try:
            run_state_machine_as_test(machine_for(volume, mode, expected), settings=SETTINGS)
        except BaseException:
            print(volume.log_tail())
            raise
        volume.unmount_and_drain()
    # Only finished examples have a model to compare with (hypothesis may abandon one).
    check_remote(volume, expected)


# ----- sequences the machine found ------------------------------------------------------
#
# Failures that depend on timing (an upload racing the next step) do not always
# replay, so hypothesis cannot keep them. A failing example prints its steps in
# the form below: paste them here to keep them as a regression.

FOUND = {
    # Off/minimal committed an empty new file at release, after close() had
    # returned: a rename onto that name then lost the renamed file's data.
    "rename over a file just created empty": [
        "on the remote: c (1024 bytes)",
        "fd 3 = open(a, O_WRONLY|O_CREAT|O_TRUNC)",
        "close(fd 3)",
        "rename(c, a)",
    ],
    # ...and minimal's read+write open of a file truncated that way read its old data.
    "reopen a file truncated without a write": [
        "on the remote: a (185 bytes)",
        "fd 3 = open(a, O_WRONLY|O_CREAT|O_TRUNC)",
        "close(fd 3)",
        "fd 4 = open(a, O_RDWR)",
        "read(fd 4, 1000 bytes at 0)",
    ],
    # ...and renames of such files went to the remote in the wrong order.
    "renames of files just created empty": [
        "fd 3 = open(d, O_WRONLY|O_CREAT|O_TRUNC)",
        "fd 4 = open(b, O_WRONLY|O_CREAT|O_TRUNC)",
        "close(fd 3)",
        "close(fd 4)",
        "rename(b, d)",
        "rename(d, c)",
        "rename(c, a)",
    ],
    # A cached new file renamed over a remote file and away again: the replaced
    # remote file came back after the drain.
    "cached file renamed over a remote one and back": [
        "on the remote: a (1667 bytes)",
        "fd 3 = open(c, O_RDWR|O_CREAT)",
        "rename(c, a)",
        "rename(a, c)",
        "close(fd 3)",
    ],
}
STEP = re.compile(
    r"on the remote: (?P<seed>\w+) \((?P<size>\d+) bytes\)"
    r"|fd (?P<fd>\d+) = open\((?P<name>\w+), (?P<flags>[\w|]+)\)"
    r"|write\(fd (?P<wfd>\d+), (?P<wsize>\d+) bytes\)"
    r"|lseek\(fd (?P<sfd>\d+), to (?P<to>\d+)\)"
    r"|read\(fd (?P<rfd>\d+), (?P<rsize>\d+) bytes at \d+\)"
    r"|ftruncate\(fd (?P<tfd>\d+), (?P<tsize>\d+)\)"
    r"|close\(fd (?P<cfd>\d+)\)"
    r"|rename\((?P<src>\w+), (?P<dst>\w+)\)"
)


def replay(volume: MountedVolume, name: str, steps: list[str]) -> Example:
    """Run logged steps in a fresh directory `name`, checking reads and, at the end,
    every file through the mount; returns what the remote must hold."""
    files: dict[str, MFile] = {}
    handles: dict[str, MHandle] = {}  # by the fd number in the log
    (volume.remote / name).mkdir()
    where = volume.mountpoint / name
    for i, step in enumerate(steps):
        m = STEP.fullmatch(step)
        assert m is not None, f"not a step: {step!r}"
        if m["seed"]:
            data = payload(i, int(m["size"]))
            (volume.remote / name / m["seed"]).write_bytes(data)
            files[m["seed"]] = MFile(bytearray(data))
    volume.forget()
    for i, step in enumerate(steps):
        m = STEP.fullmatch(step)
        assert m is not None
        try:
            if m["fd"]:
                flags = functools.reduce(
                    lambda acc, flag: acc | getattr(os, flag), m["flags"].split("|"), 0
                )
                f = files.setdefault(m["name"], MFile())
                if flags & os.O_TRUNC:
                    f.data.clear()
                fd = os.open(where / m["name"], flags, 0o644)
                access = flags & os.O_ACCMODE
                handles[m["fd"]] = MHandle(
                    fd,
                    f,
                    access != os.O_WRONLY,
                    access != os.O_RDONLY,
                    False,
                    bool(flags & os.O_APPEND),
                )
            elif m["wfd"]:
                h = handles[m["wfd"]]
                data = payload(i, int(m["wsize"]))
                assert os.write(h.fd, data) == len(data)
                if data:
                    h.pos = len(h.file.data) if h.append else h.pos
                    end = h.pos + len(data)
                    h.file.data.extend(bytes(max(0, end - len(h.file.data))))
                    h.file.data[h.pos : end] = data
                    h.pos = end
            elif m["sfd"]:
                h = handles[m["sfd"]]
                h.pos = os.lseek(h.fd, int(m["to"]), os.SEEK_SET)
            elif m["rfd"]:
                h = handles[m["rfd"]]
                want = bytes(h.file.data[h.pos : h.pos + int(m["rsize"])])
                got = read_fully(h.fd, int(m["rsize"]))
                assert got == want, first_difference(got, want)
                h.pos += len(got)
            elif m["tfd"]:
                h = handles[m["tfd"]]
                size = int(m["tsize"])
                os.ftruncate(h.fd, size)
                del h.file.data[size:]
                h.file.data.extend(bytes(size - len(h.file.data)))
            elif m["cfd"]:
                os.close(handles.pop(m["cfd"]).fd)
            elif m["src"]:
                os.rename(where / m["src"], where / m["dst"])
                files[m["dst"]] = files.pop(m["src"])
        except Exception as e:
            e.add_note(f"at step {i} of {name}: {step}")
            for h in handles.values():  # an open file would hold the worker after unmount
                with contextlib.suppress(OSError):
                    os.close(h.fd)
            raise
    for h in handles.values():
        os.close(h.fd)
    assert sorted(os.listdir(where)) == sorted(files), f"{name}: listing"
    for file_name, f in files.items():
        got = (where / file_name).read_bytes()
        assert got == f.data, f"{name}/{file_name}: {first_difference(got, f.data)}"
    return Example({n: bytes(f.data) for n, f in files.items()}, steps)


@pytest.mark.parametrize("mode", list(RULES))
def test_sequences_the_model_found(tmp_path: Path, mode: str) -> None:
    expected: dict[str, Example] = {}
    with mounted(tmp_path, mode) as volume:
        for case, steps in FOUND.items():
            if not RULES[mode].read_write and any("O_RDWR" in step for step in steps):
                continue  # not an open this mode allows
            for attempt in range(5):  # the races lost more often than not, not always
                name = f"{case.replace(' ', '-')}-{attempt}"
                expected[name] = replay(volume, name, steps)
        volume.unmount_and_drain()
    check_remote(volume, expected)
