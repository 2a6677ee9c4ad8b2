"""The Docker volume plugin protocol's semantics, over the ports.

Concurrency: one anyio lock per volume name, so a slow Create or Mount (a remote
that does not answer) holds up only calls about that volume. List, Get and Path
take no lock: every change to the in-memory table happens between two awaits, so
a reader always sees a whole state. Saves are serialised by their own lock and
coalesced: each save writes the newest state, never an older one over a newer.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import anyio
from loguru import logger

from application.ports import ConfigSource, MountManager, StateStore, StorageFactory
from domain.errors import (
    AlreadyMountedById,
    CloudvolError,
    InvalidVolumeName,
    NotMounted,
    NotMountedById,
    RemoteUnavailable,
    VolumeInUse,
    VolumeNotFound,
)
from domain.names import validate_volume_name
from domain.state_records import RecordError, record_from_dict, volume_to_record
from domain.volume import BackendSpec, Volume
from domain.volume_options import ParsedVolumeOptions, parse_volume_options

DEFAULT_CONNECT_TIMEOUT = 60.0  # well under Docker's 2 minutes for Create
_ACLOSE_TIMEOUT = 5.0


class VolumeExists(CloudvolError):
    """Create of an existing name with other options."""


@dataclass(frozen=True)
class VolumeInfo:
    """One volume as Get and List report it."""

    name: str
    mountpoint: str
    created_at: datetime
    mounts: tuple[str, ...]


@dataclass(frozen=True)
class Capabilities:
    scope: str = "local"


def _now() -> datetime:
    # Local time with its offset, as rclone's time.Now() is written.
    return datetime.now().astimezone()


class VolumeService:
    def __init__(
        self,
        *,
        state_store: StateStore,
        mount_manager: MountManager,
        storage_factory: StorageFactory,
        base_dir: str,
        daemon_defaults: Mapping[str, str] | None = None,
        config_source: ConfigSource | None = None,
        forget_state: bool = False,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._store = state_store
        self._mounts = mount_manager
        self._storage = storage_factory
        self._defaults = dict(daemon_defaults or {})
        self._config = config_source
        self._base_dir = os.path.normpath(os.path.abspath(base_dir))
        self._forget_state = forget_state
        self._connect_timeout = connect_timeout
        self._clock = clock

        self._volumes: dict[str, Volume] = {}
        self._locks: dict[str, anyio.Lock] = {}
        # Records that no longer parse: kept verbatim in the state file (see load_state).
        self._kept_records: list[tuple[str | None, dict[str, object]]] = []
        # Volumes restored with mount IDs whose remount has not finished yet.
        self._pending: dict[str, anyio.Event] = {}
        self._save_lock = anyio.Lock()
        self._version = 0
        self._saved_version = 0

    # -- protocol calls ------------------------------------------------------

    async def create(self, name: str, opts: Mapping[str, str]) -> None:
        name = validate_volume_name(name)
        mountpoint = self._mountpoint_for(name)
        async with self._locked(name):
            parsed = self._parse(opts)
            existing = self._volumes.get(name)
            if existing is not None:
                if _same_config(existing, parsed):
                    logger.debug("volume {!r} exists with the same options", name)
                    return
                raise VolumeExists(
                    f"volume {name!r} already exists with different options;"
                    " remove it first to change them"
                )
            await self._check_remote(parsed.spec.backend)
            volume = Volume(
                name=name,
                mountpoint=mountpoint,
                created_at=self._clock(),
                options=dict(opts),
                spec=parsed.spec,
                fs=parsed.fs,
                type=parsed.type,
                path=parsed.path,
            )
            await self._mounts.prepare(volume)
            self._volumes[name] = volume
            # A new volume under a name whose old record no longer parsed replaces it.
            self._kept_records = [(n, r) for n, r in self._kept_records if n != name]
            logger.info("created volume {!r} at {}", name, mountpoint)
            await self._save()

    async def remove(self, name: str) -> None:
        async with self._locked(name):
            volume = self._volumes.get(name)
            if volume is None:
                if self._drop_kept_record(name):
                    logger.warning("removed the unrestorable state record of volume {!r}", name)
                    await self._save()
                    return
                raise VolumeNotFound(name)
            if volume.mount_ids:
                raise VolumeInUse()
            await self._mounts.discard(volume)
            del self._volumes[name]
            logger.info("removed volume {!r}", name)
            await self._save()

    async def mount(self, name: str, mount_id: str) -> str:
        async with self._locked(name):
            volume = self._get(name)
            if mount_id in volume.mount_ids:
                raise AlreadyMountedById()
            if not volume.mount_ids:
                await self._mounts.mount(volume)
                logger.info("mounted volume {!r} at {}", name, volume.mountpoint)
            # A new list, not append: snapshots handed out earlier stay as they were.
            volume.mount_ids = [*volume.mount_ids, mount_id]
            await self._save()
            return volume.mountpoint

    async def unmount(self, name: str, mount_id: str) -> None:
        async with self._locked(name):
            volume = self._get(name)
            if not volume.mount_ids:
                raise NotMounted()
            if mount_id not in volume.mount_ids:
                raise NotMountedById()
            remaining = [i for i in volume.mount_ids if i != mount_id]
            # Like rclone, the ID goes even when the unmount fails: Docker does not
            # retry an Unmount, and a kept ID would pin the volume "in use" for good.
            volume.mount_ids = remaining
            try:
                if not remaining:
                    await self._mounts.unmount(volume)
                    logger.info("unmounted volume {!r}", name)
            finally:
                await self._save()

    def path(self, name: str) -> str:
        return self._get(name).mountpoint

    def get(self, name: str) -> VolumeInfo:
        return _info(self._get(name))

    def list(self) -> list[VolumeInfo]:
        return [_info(self._volumes[n]) for n in sorted(self._volumes)]

    def volumes(self) -> builtins.list[Volume]:
        """Every volume with its spec, by name (for `cloudvol status`)."""
        return [self._volumes[n] for n in sorted(self._volumes)]

    def capabilities(self) -> Capabilities:
        return Capabilities()

    # -- daemon lifecycle ----------------------------------------------------

    async def restore(self) -> None:
        """Load the state file, then remount what was mounted (both steps)."""
        await self.load_state()
        await self.restore_mounts()

    async def load_state(self) -> None:
        """Rebuild the volumes from the state file; no mounting yet.

        A record that no longer parses (bad field, or options the daemon now
        refuses) is logged and kept verbatim: it is written back on every save, so
        fixing the daemon's flags brings it back at the next start. Create of the
        same name replaces it; Remove of that name drops it.
        Volumes that had mount IDs are marked pending: calls about them wait until
        `restore_mounts` has dealt with them.
        """
        if self._forget_state:
            logger.info("--forget-state: not restoring volumes from the state file")
            return
        records = await anyio.to_thread.run_sync(self._store.load)
        for raw in records:
            raw_name = raw.get("name")
            name = raw_name if isinstance(raw_name, str) and raw_name else None
            try:
                volume = self._volume_from_record(raw)
            except (CloudvolError, RecordError) as exc:
                logger.error(
                    "cannot restore volume {!r}: {}; its state record is kept unchanged",
                    name,
                    exc,
                )
                self._kept_records.append((name, raw))
                continue
            self._volumes[volume.name] = volume
            if volume.mount_ids:
                self._pending[volume.name] = anyio.Event()
        logger.info("restored {} volume(s) from the state file", len(self._volumes))

    async def restore_mounts(self) -> None:
        """Re-adopt the live worker of each volume that had mount IDs, or remount
        it; for the others, have pending uploads left in their caches finished.

        A volume that can be neither keeps existing but loses its IDs: the
        containers that held them are gone (a worker that is not alive served no
        one), and kept IDs would leave it "in use" with nothing mounted.
        """
        async with anyio.create_task_group() as tg:
            for name in list(self._pending):
                tg.start_soon(self._restore_mount, name)
            for name, volume in self._volumes.items():
                if not volume.mount_ids and name not in self._pending:
                    tg.start_soon(self._recover_uploads, volume)

    async def _recover_uploads(self, volume: Volume) -> None:
        # A worker killed with uploads pending left them in the volume's cache:
        # they must reach the remote even if nobody mounts the volume again.
        try:
            if await self._mounts.recover(volume):
                logger.info("uploading what volume {!r} left pending", volume.name)
        except Exception as exc:
            logger.error("cannot upload the pending files of volume {!r}: {}", volume.name, exc)

    async def _restore_mount(self, name: str) -> None:
        event = self._pending[name]
        try:
            async with self._lock_for(name):
                volume = self._volumes.get(name)
                if volume is None or not volume.mount_ids:
                    return
                try:
                    if await self._mounts.adopt(volume):
                        logger.info("re-adopted the live mount of volume {!r}", name)
                    else:
                        await self._mounts.mount(volume)
                        logger.info("remounted volume {!r} at {}", name, volume.mountpoint)
                except Exception as exc:
                    logger.error(
                        "cannot remount volume {!r}: {}; dropping its mount IDs {}",
                        name,
                        exc,
                        volume.mount_ids,
                    )
                    volume.mount_ids = []
                    await self._save()
        finally:
            del self._pending[name]
            event.set()

    async def forget_dir_caches(self) -> None:
        """SIGHUP, as with rclone: every mounted volume re-reads its directories
        from the remote."""
        logger.info("forgetting the directory caches of the mounted volumes")
        await self._mounts.forget_all()

    async def shutdown(self) -> None:
        """Clean exit: unmount everything, then save the volumes without mount IDs."""
        try:
            await self._mounts.shutdown()
        except Exception:
            logger.exception("unmounting at shutdown failed")
        finally:
            for volume in self._volumes.values():
                volume.mount_ids = []
            await self._save()

    # -- internals -----------------------------------------------------------

    def _get(self, name: str) -> Volume:
        volume = self._volumes.get(name)
        if volume is None:
            raise VolumeNotFound(name)
        return volume

    def _lock_for(self, name: str) -> anyio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = anyio.Lock()
        return lock

    @asynccontextmanager
    async def _locked(self, name: str) -> AsyncIterator[None]:
        pending = self._pending.get(name)
        if pending is not None:
            await pending.wait()
        async with self._lock_for(name):
            yield

    def _parse(self, volume_opts: Mapping[str, str]) -> ParsedVolumeOptions:
        # The config file is re-read when it changes, as rclone does.
        config = self._config.current() if self._config is not None else None
        return parse_volume_options(volume_opts, self._defaults, config)

    def _mountpoint_for(self, name: str) -> str:
        # Belt and braces after the name validator: whatever it lets through, the
        # mountpoint must be a direct child of the base directory.
        mountpoint = os.path.normpath(os.path.join(self._base_dir, name))
        if os.path.dirname(mountpoint) != self._base_dir or not name or name in (".", ".."):
            raise InvalidVolumeName(f"volume name {name!r} would leave the base directory")
        return mountpoint

    async def _check_remote(self, backend: BackendSpec) -> None:
        storage = self._storage.create(backend)
        target = _describe(backend)
        try:
            with anyio.fail_after(self._connect_timeout):
                await storage.check()
        except TimeoutError:
            raise RemoteUnavailable(
                f"timed out after {self._connect_timeout:g} s connecting to {target}"
            ) from None
        except OSError as exc:
            raise RemoteUnavailable(f"cannot connect to {target}: {exc}") from exc
        finally:
            with anyio.move_on_after(_ACLOSE_TIMEOUT, shield=True):
                try:
                    await storage.aclose()
                except Exception as exc:
                    logger.warning("closing the check connection to {} failed: {}", target, exc)

    def _volume_from_record(self, raw: Mapping[str, object]) -> Volume:
        record = record_from_dict(raw)
        if record.name in self._volumes:
            raise RecordError(f"duplicate record for volume {record.name!r}")
        options = record.volume_options()
        parsed = self._parse(options)
        return Volume(
            name=record.name,
            # rclone keeps the recorded mountpoint: running containers bind it.
            mountpoint=record.mountpoint or self._mountpoint_for(record.name),
            created_at=record.created_at,
            options=options,
            spec=parsed.spec,
            fs=parsed.fs,
            type=parsed.type,
            path=parsed.path,
            mount_ids=list(record.mounts),
        )

    def _drop_kept_record(self, name: str) -> bool:
        before = len(self._kept_records)
        self._kept_records = [(n, r) for n, r in self._kept_records if n != name]
        return len(self._kept_records) != before

    # builtins.list: inside the class, `list` is the List call below.
    def _snapshot(self) -> builtins.list[dict[str, object]]:
        records = [volume_to_record(self._volumes[n]) for n in sorted(self._volumes)]
        return records + [dict(r) for _, r in self._kept_records]

    async def _save(self) -> None:
        """Persist the current state. Failures are logged, not raised: the change
        has happened (a mount is up), and the next save writes it."""
        self._version += 1
        wanted = self._version
        # Shielded: a caller cancelled mid-save must not leave a change unsaved.
        with anyio.CancelScope(shield=True):
            async with self._save_lock:
                if self._saved_version >= wanted:
                    return  # a later save already wrote this change
                version, records = self._version, self._snapshot()
                try:
                    await anyio.to_thread.run_sync(self._store.save, records)
                except Exception:
                    logger.exception("saving the state file failed")
                    return
                self._saved_version = version


def _same_config(volume: Volume, parsed: ParsedVolumeOptions) -> bool:
    # Compared parsed, so `remote=` vs `fs=`, or key spelling, do not count as a change.
    return (volume.spec, volume.fs, volume.type, volume.path) == (
        parsed.spec,
        parsed.fs,
        parsed.type,
        parsed.path,
    )


def _describe(backend: BackendSpec) -> str:
    host = backend.options.get("host")
    if host:
        return f"{backend.type} host {host}"
    return f"{backend.type} remote {backend.root or '/'}"


def _info(volume: Volume) -> VolumeInfo:
    return VolumeInfo(
        name=volume.name,
        mountpoint=volume.mountpoint,
        created_at=volume.created_at,
        mounts=tuple(sorted(volume.mount_ids)),
    )
