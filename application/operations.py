"""Operating a running daemon: what `cloudvol status` shows and what `cloudvol rc`
does, with rclone's command names and parameters (`vfs/forget`, `vfs/refresh`,
`vfs/stats`, `vfs/queue`, `vfs/queue-set-expiry`, `core/version`).

The volumes come from the `VolumeService`; what each is doing comes from its
mount worker, asked through the `WorkerAdmin` port. Workers the daemon does not
know (`cloudvol mount` started with the same cache directory) are shown too."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from application.volume_service import VolumeService
from domain.errors import CloudvolError
from domain.remote_display import describe_remote
from domain.volume import Volume


class WorkerRequestFailed(CloudvolError):
    """No live worker answered, or it refused the request (the message says which)."""


class RcError(CloudvolError):
    """An unknown command, a bad parameter or a volume that does not exist."""


class WorkerAdmin(Protocol):
    def live_workers(self) -> list[str]:
        """The names of the volumes whose worker is running (docker's and others)."""
        ...

    async def request(self, name: str, op: str, **fields: Any) -> dict[str, Any]:
        """Send a control request to the volume's worker; its reply's fields.
        Raises WorkerRequestFailed."""
        ...


@dataclass(frozen=True)
class DaemonInfo:
    version: str
    pid: int
    started_at: float  # wall-clock seconds
    socket: str
    admin_socket: str
    state_file: str
    config_file: str | None
    cache_dir: str
    metrics_addr: str | None = None


Params = Mapping[str, object]


class Operations:
    def __init__(
        self,
        service: VolumeService,
        workers: WorkerAdmin,
        info: DaemonInfo,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._service = service
        self._workers = workers
        self._info = info
        self._now = wall_clock
        self._commands: dict[str, Callable[[Params], Awaitable[dict[str, Any]]]] = {
            "core/version": self._version,
            "vfs/forget": self._forget,
            "vfs/refresh": self._refresh,
            "vfs/stats": self._stats,
            "vfs/queue": self._queue,
            "vfs/queue-set-expiry": self._queue_set_expiry,
        }

    @property
    def commands(self) -> list[str]:
        return sorted(self._commands)

    # ----- status ---------------------------------------------------------------

    async def status(self, volume: str | None = None) -> dict[str, Any]:
        """Every volume (or the one named) and the daemon, as `status --json` prints."""
        names = [volume] if volume is not None else self._all_names()
        if volume is not None and volume not in self._all_names():
            raise RcError(f"no volume named {volume!r}")
        return {
            "daemon": {
                **asdict(self._info),
                "uptime": max(0.0, self._now() - self._info.started_at),
            },
            "volumes": [await self._volume_status(name) for name in names],
        }

    def _known(self) -> dict[str, Volume]:
        return {v.name: v for v in self._service.volumes()}

    def _all_names(self) -> list[str]:
        return sorted(set(self._known()) | set(self._workers.live_workers()))

    async def _volume_status(self, name: str) -> dict[str, Any]:
        volume = self._known().get(name)
        entry: dict[str, Any] = {
            "name": name,
            "frontend": "docker" if volume is not None else "mount",
            "mountpoint": volume.mountpoint if volume is not None else None,
            "mount_ids": sorted(volume.mount_ids) if volume is not None else [],
            "remote": describe_remote(volume.spec.backend) if volume is not None else None,
            "cache_mode": volume.spec.vfs.cache_mode.value if volume is not None else None,
            "worker": None,
            "cache": None,
            "remote_traffic": None,
            "fuse": None,
        }
        try:
            stats = (await self._workers.request(name, "stats"))["stats"]
        except (WorkerRequestFailed, KeyError, TypeError):
            return entry  # no worker now: a volume not mounted, its uploads done
        entry["worker"] = {
            "pid": stats.get("pid"),
            "state": stats.get("state"),
            "started_at": stats.get("started_at"),
        }
        for key in ("mountpoint", "remote", "cache_mode"):
            entry[key] = entry[key] or stats.get(key)
        for key in ("cache", "remote_traffic", "fuse"):
            entry[key] = stats.get(key)
        return entry

    # ----- rc -----------------------------------------------------------------------

    async def rc(self, command: str, params: Params) -> dict[str, Any]:
        handler = self._commands.get(command)
        if handler is None:
            raise RcError(
                f"unknown command {command!r}; the commands are: {', '.join(self.commands)}"
            )
        return await handler(params)

    async def _version(self, params: Params) -> dict[str, Any]:
        _only(params, "core/version")
        return {"version": self._info.version}

    async def _forget(self, params: Params) -> dict[str, Any]:
        _only(params, "vfs/forget", "volume", "file", "dir")
        paths = [str(params[k]) for k in ("file", "dir") if k in params]
        done: dict[str, Any] = {}
        for name in await self._targets(params):
            if not paths:
                await self._ask(name, "forget")
                done[name] = ["/"]
                continue
            done[name] = [
                p for p in paths if (await self._ask(name, "forget-path", path=p))["found"]
            ]
        return {"forgotten": done}

    async def _refresh(self, params: Params) -> dict[str, Any]:
        _only(params, "vfs/refresh", "volume", "dir", "recursive")
        recursive = _boolean(params, "recursive")
        directory = str(params.get("dir", ""))
        done = {}
        for name in await self._targets(params):
            reply = await self._ask(name, "refresh", dir=directory, recursive=recursive)
            done[name] = {"dir": reply["refreshed"], "listings": reply["listings"]}
        return {"result": done}

    async def _stats(self, params: Params) -> dict[str, Any]:
        _only(params, "vfs/stats", "volume")
        return {
            name: (await self._ask(name, "stats"))["stats"] for name in await self._targets(params)
        }

    async def _queue(self, params: Params) -> dict[str, Any]:
        _only(params, "vfs/queue", "volume")
        queues = {}
        for name in await self._targets(params):
            cache = (await self._ask(name, "stats"))["stats"].get("cache") or {}
            queues[name] = cache.get("queue", [])
        return {"queue": queues}

    async def _queue_set_expiry(self, params: Params) -> dict[str, Any]:
        _only(params, "vfs/queue-set-expiry", "volume", "id", "expiry")
        if "volume" not in params or "id" not in params:
            raise RcError("vfs/queue-set-expiry needs volume=V and id=N (from vfs/queue)")
        name = (await self._targets(params))[0]
        upload_id = _number(params, "id", int)
        expiry = _number(params, "expiry", float) if "expiry" in params else 0.0
        await self._ask(name, "expire", id=upload_id, expiry=expiry)
        return {"volume": name, "id": upload_id, "expiry": expiry}

    async def _targets(self, params: Params) -> list[str]:
        """The volume named by `volume=`, else every volume with a live worker."""
        live = set(self._workers.live_workers())
        if "volume" in params:
            name = str(params["volume"])
            if name not in live and name not in self._known():
                raise RcError(f"no volume named {name!r}")
            if name not in live:
                raise RcError(f"volume {name!r} has no running worker (it is not mounted)")
            return [name]
        return sorted(live)

    async def _ask(self, name: str, op: str, **fields: Any) -> dict[str, Any]:
        try:
            return await self._workers.request(name, op, **fields)
        except WorkerRequestFailed as e:
            raise RcError(f"volume {name!r}: {e}") from None


def _only(params: Params, command: str, *allowed: str) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        takes = f"takes {', '.join(allowed)}" if allowed else "takes no parameters"
        raise RcError(f"{command}: unknown parameter(s) {', '.join(unknown)}; it {takes}")


def _boolean(params: Params, key: str) -> bool:
    value = params.get(key, False)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise RcError(f"{key}={value!r}: expected true or false")


def _number(params: Params, key: str, kind: type[int] | type[float]) -> Any:
    value = params[key]
    try:
        number = kind(str(value).strip())
    except ValueError:
        raise RcError(f"{key}={value!r}: expected a {kind.__name__}") from None
    if number < 0:
        raise RcError(f"{key}={value!r}: must be 0 or more")
    return number
