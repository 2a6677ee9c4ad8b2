"""Fakes for the daemon's ports: a state store in memory, and a mount manager that
records calls and can be held up or made to fail."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from domain.errors import MountFailed
from domain.volume import Volume


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


def mount_failed(message: str = "worker exited: fuse: device not found") -> MountFailed:
    return MountFailed(message)
