"""Fakes for the daemon's ports: a state store in memory, a mount manager that
records calls and can be held up or made to fail, and stand-ins for the option
parser and name validator (small, strict, enough for the service's tests)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import anyio

from domain.errors import InvalidVolumeName, MountFailed, OptionError
from domain.volume import BackendSpec, VfsOptions, Volume, VolumeSpec


class FakeStateStore:
    def __init__(self, records: list[dict[str, object]] | None = None) -> None:
        self.records: list[dict[str, object]] = list(records or [])
        self.saves: list[list[dict[str, object]]] = []
        self.fail_save: Exception | None = None

    def load(self) -> list[dict[str, object]]:
        return [dict(r) for r in self.records]

    def save(self, records: list[dict[str, object]]) -> None:
        if self.fail_save is not None:
            raise self.fail_save
        self.saves.append(records)
        self.records = records

    @property
    def last(self) -> list[dict[str, object]]:
        return self.saves[-1]


@dataclass
class FakeMountManager:
    """Records `(operation, volume name)`; `gates[(op, name)]` holds an operation
    until the event is set (`entered[(op, name)]` is set when it starts waiting);
    `failures[(op, name)]` is raised instead."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    live: set[str] = field(default_factory=set)  # volumes with a live worker to adopt
    mounted: set[str] = field(default_factory=set)
    gates: dict[tuple[str, str], anyio.Event] = field(default_factory=dict)
    entered: dict[tuple[str, str], anyio.Event] = field(default_factory=dict)
    failures: dict[tuple[str, str], Exception] = field(default_factory=dict)
    shutdown_calls: int = 0
    forget_calls: int = 0
    dirty: set[str] = field(default_factory=set)  # volumes whose caches hold pending uploads
    recovered: list[str] = field(default_factory=list)

    def hold(self, op: str, name: str) -> tuple[anyio.Event, anyio.Event]:
        """Make `op` on `name` wait; returns (entered, release)."""
        entered, release = anyio.Event(), anyio.Event()
        self.entered[(op, name)] = entered
        self.gates[(op, name)] = release
        return entered, release

    async def _step(self, op: str, volume: Volume) -> None:
        key = (op, volume.name)
        self.calls.append(key)
        if key in self.entered:
            self.entered[key].set()
        if key in self.gates:
            await self.gates[key].wait()
        if key in self.failures:
            raise self.failures[key]

    def ops(self, op: str) -> list[str]:
        return [name for o, name in self.calls if o == op]

    async def prepare(self, volume: Volume) -> None:
        await self._step("prepare", volume)

    async def discard(self, volume: Volume) -> None:
        await self._step("discard", volume)

    async def mount(self, volume: Volume) -> None:
        await self._step("mount", volume)
        self.mounted.add(volume.name)

    async def unmount(self, volume: Volume) -> None:
        await self._step("unmount", volume)
        self.mounted.discard(volume.name)

    async def adopt(self, volume: Volume) -> bool:
        await self._step("adopt", volume)
        if volume.name in self.live:
            self.mounted.add(volume.name)
            return True
        return False

    async def recover(self, volume: Volume) -> bool:
        # Kept apart from `calls`: recovery runs beside the other operations.
        self.recovered.append(volume.name)
        return volume.name in self.dirty

    async def shutdown(self) -> None:
        self.shutdown_calls += 1
        self.mounted.clear()

    async def forget_all(self) -> None:
        self.forget_calls += 1


@dataclass(frozen=True)
class FakeParsed:
    spec: VolumeSpec
    fs: str = ""
    type: str = ""
    path: str = ""


_BACKEND_KEY = re.compile(r"(?P<type>[a-z]+)-(?P<opt>[a-z-]+)")


def fake_parse_options(volume_opts: Mapping[str, str], /) -> FakeParsed:
    """A stand-in for `domain.volume_options.parse_volume_options` with no daemon
    defaults: `type` or `remote`/`fs` (`:type:path`), `path`, `read-only`, and
    `<type>-<option>` backend options; anything else is refused."""
    fs = volume_opts.get("remote") or volume_opts.get("fs") or ""
    type_ = volume_opts.get("type", "")
    if bool(fs) == bool(type_):
        raise OptionError("exactly one of remote/fs and type is needed")
    root = ""
    if fs:
        match = re.fullmatch(r":(\w+):(.*)", fs)
        if match is None:
            raise OptionError(f"cannot parse remote {fs!r}")
        type_, root = match.group(1), match.group(2)
    path = volume_opts.get("path", "")
    root = path or root
    backend: dict[str, str | int | float | bool] = {}
    vfs = VfsOptions()
    for key, value in volume_opts.items():
        if key in ("remote", "fs", "type", "path"):
            continue
        if key == "read-only":
            vfs = VfsOptions(read_only=value == "true")
            continue
        match = _BACKEND_KEY.fullmatch(key)
        if match is None or match.group("type") != type_:
            raise OptionError(f'unsupported backend option "{key}"')
        backend[match.group("opt").replace("-", "_")] = value
    spec = VolumeSpec(backend=BackendSpec(type=type_, root=root, options=backend), vfs=vfs)
    return FakeParsed(spec=spec, fs=fs, type=volume_opts.get("type", ""), path=path)


def fake_validate_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise InvalidVolumeName(f"invalid volume name {name!r}")
    return name


def accept_any_name(name: str) -> str:
    return name


def mount_failed(message: str = "worker exited: fuse: device not found") -> MountFailed:
    return MountFailed(message)
