"""VolumeService through the container, its ports overridden with fakes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from loguru import logger

from application.volume_service import VolumeExists, VolumeService
from domain.errors import (
    AlreadyMountedById,
    InvalidVolumeName,
    MountFailed,
    NotMounted,
    NotMountedById,
    OptionError,
    RemoteUnavailable,
    VolumeInUse,
    VolumeNotFound,
)
from domain.volume import BackendSpec
from entrypoints.daemon_container import DaemonContainer
from tests.fakes.containers import DaemonFakes, use_daemon_fakes
from tests.fakes.daemon import FakeMountManager, FakeStateStore
from tests.fakes.storage import MemoryStorageFactory, MemoryTree

pytestmark = pytest.mark.anyio

SFTP = {"type": "sftp", "sftp-host": "h", "path": "/srv"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Harness:
    container: DaemonContainer
    service: VolumeService
    store: FakeStateStore
    mounts: FakeMountManager
    storage: MemoryStorageFactory
    base_dir: Path


def make(
    tmp_path: Path,
    records: list[dict[str, object]] | None = None,
    *,
    forget_state: bool = False,
    connect_timeout: float = 60.0,
    storage: object | None = None,
) -> Harness:
    container = DaemonContainer()
    base_dir = tmp_path / "volumes"
    container.config.from_dict(
        {
            "base_dir": str(base_dir),
            "cache_dir": str(tmp_path / "cache"),
            "forget_state": forget_state,
            "connect_timeout": connect_timeout,
        }
    )
    store, mounts, factory = FakeStateStore(records), FakeMountManager(), MemoryStorageFactory()
    use_daemon_fakes(container, DaemonFakes(store, mounts, storage or factory))
    return Harness(container, container.volume_service(), store, mounts, factory, base_dir)


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return make(tmp_path)


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{level} {message}")
    yield lines
    logger.remove(sink)


# -- create -------------------------------------------------------------------


async def test_create_prepares_mountpoint_and_saves(h: Harness) -> None:
    await h.service.create("data", SFTP)

    assert h.mounts.calls == [("prepare", "data")]
    assert h.service.path("data") == str(h.base_dir / "data")
    [record] = h.store.last
    assert record["name"] == "data"
    assert record["type"] == "sftp"
    assert record["path"] == "/srv"
    assert record["options"] == {"sftp-host": "h"}
    assert record["mounts"] == []
    info = h.service.get("data")
    assert info.mounts == ()
    assert info.created_at.tzinfo is not None


async def test_create_same_options_again_succeeds_without_redoing(h: Harness) -> None:
    await h.service.create("data", SFTP)
    await h.service.create("data", dict(SFTP))
    assert h.mounts.ops("prepare") == ["data"]
    assert len(h.store.saves) == 1


async def test_create_existing_with_other_options_fails(h: Harness) -> None:
    await h.service.create("data", SFTP)
    with pytest.raises(VolumeExists, match="already exists with different options"):
        await h.service.create("data", {**SFTP, "path": "/other"})
    assert h.service.get("data").name == "data"
    assert h.store.last[0]["path"] == "/srv"


async def test_create_option_error_goes_out_unchanged(h: Harness) -> None:
    with pytest.raises(OptionError) as exc:
        await h.service.create("data", {"type": "sftp", "bogus": "1"})
    assert str(exc.value) == 'unsupported backend option "bogus"'
    assert h.mounts.calls == [] and h.store.saves == []
    assert h.service.list() == []


async def test_create_with_unreachable_remote_fails_with_its_message(h: Harness) -> None:
    h.storage.trees["/srv"] = MemoryTree(reachable=False)
    with pytest.raises(RemoteUnavailable, match=r"connection refused \(fake\)"):
        await h.service.create("data", SFTP)
    assert h.mounts.calls == [] and h.store.saves == []
    with pytest.raises(VolumeNotFound):
        h.service.get("data")


class _HangingStorage:
    def __init__(self) -> None:
        self.closed = False

    async def check(self) -> None:
        await anyio.sleep_forever()

    async def aclose(self) -> None:
        self.closed = True


class _HangingFactory:
    def __init__(self) -> None:
        self.made: list[_HangingStorage] = []

    def create(self, backend: BackendSpec) -> _HangingStorage:
        self.made.append(_HangingStorage())
        return self.made[-1]


async def test_create_times_out_on_a_silent_remote(tmp_path: Path) -> None:
    factory = _HangingFactory()
    h = make(tmp_path, connect_timeout=0.05, storage=factory)
    with pytest.raises(RemoteUnavailable) as exc:
        await h.service.create("data", SFTP)
    assert str(exc.value) == "timed out after 0.05 s connecting to sftp host h"
    assert factory.made[0].closed
    assert h.service.list() == []


@pytest.mark.parametrize("name", ["../../etcx", "a/b", "..", "", "-x"])
async def test_bad_name_refused_nothing_created(h: Harness, name: str) -> None:
    with pytest.raises(InvalidVolumeName):
        await h.service.create(name, SFTP)
    assert h.mounts.calls == [] and h.store.saves == []


@pytest.mark.parametrize("name", ["../../etcx", "a/b", "..", ".", "", "x/../../y"])
def test_name_cannot_leave_base_dir_even_if_validator_lets_it(h: Harness, name: str) -> None:
    with pytest.raises(InvalidVolumeName, match="would leave the base directory"):
        h.service._mountpoint_for(name)


# -- mount / unmount / remove -------------------------------------------------


async def test_mount_is_counted_by_id(h: Harness) -> None:
    await h.service.create("data", SFTP)
    mountpoint = await h.service.mount("data", "c1")
    assert mountpoint == str(h.base_dir / "data")
    await h.service.mount("data", "c2")
    assert h.mounts.ops("mount") == ["data"]
    assert h.service.get("data").mounts == ("c1", "c2")

    with pytest.raises(AlreadyMountedById) as exc:
        await h.service.mount("data", "c1")
    assert str(exc.value) == "volume is already mounted by this id"

    await h.service.unmount("data", "c1")
    assert h.mounts.ops("unmount") == []
    with pytest.raises(NotMountedById) as exc2:
        await h.service.unmount("data", "c1")
    assert str(exc2.value) == "volume is not mounted by this id"

    await h.service.unmount("data", "c2")
    assert h.mounts.ops("unmount") == ["data"]
    with pytest.raises(NotMounted) as exc3:
        await h.service.unmount("data", "c2")
    assert str(exc3.value) == "volume is not mounted"


async def test_unknown_volume_errors(h: Harness) -> None:
    for call in (
        h.service.mount("nope", "c1"),
        h.service.unmount("nope", "c1"),
        h.service.remove("nope"),
    ):
        with pytest.raises(VolumeNotFound) as exc:
            await call
        assert str(exc.value) == "volume not found"
    with pytest.raises(VolumeNotFound):
        h.service.path("nope")
    with pytest.raises(VolumeNotFound):
        h.service.get("nope")


async def test_remove_in_use_then_after_unmount(h: Harness) -> None:
    await h.service.create("data", SFTP)
    await h.service.mount("data", "c1")
    with pytest.raises(VolumeInUse) as exc:
        await h.service.remove("data")
    assert str(exc.value) == "volume is in use"
    assert h.mounts.ops("discard") == []

    await h.service.unmount("data", "c1")
    await h.service.remove("data")
    assert h.mounts.ops("discard") == ["data"]
    assert h.service.list() == []
    assert h.store.last == []


async def test_failed_mount_records_no_id_and_next_mount_retries(h: Harness) -> None:
    await h.service.create("data", SFTP)
    h.mounts.failures[("mount", "data")] = MountFailed("fuse: device not found")
    with pytest.raises(MountFailed, match="fuse: device not found"):
        await h.service.mount("data", "c1")
    assert h.service.get("data").mounts == ()

    del h.mounts.failures[("mount", "data")]
    await h.service.mount("data", "c1")
    assert h.mounts.ops("mount") == ["data", "data"]
    assert h.service.get("data").mounts == ("c1",)


async def test_failed_unmount_still_drops_the_id(h: Harness) -> None:
    await h.service.create("data", SFTP)
    await h.service.mount("data", "c1")
    h.mounts.failures[("unmount", "data")] = MountFailed("device busy")
    with pytest.raises(MountFailed):
        await h.service.unmount("data", "c1")
    assert h.service.get("data").mounts == ()
    assert h.store.last[0]["mounts"] == []


async def test_list_is_sorted_and_capabilities_local(h: Harness) -> None:
    for name in ("b", "c", "a"):
        await h.service.create(name, SFTP)
    assert [v.name for v in h.service.list()] == ["a", "b", "c"]
    assert h.service.capabilities().scope == "local"


# -- concurrency --------------------------------------------------------------


async def test_slow_mount_of_one_volume_blocks_no_other_call(h: Harness) -> None:
    await h.service.create("a", SFTP)
    entered, release = h.mounts.hold("mount", "a")
    second_done = anyio.Event()

    async def second_mount_of_a() -> None:
        await h.service.mount("a", "c2")
        second_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(h.service.mount, "a", "c1")
        await entered.wait()
        tg.start_soon(second_mount_of_a)
        with anyio.fail_after(5):
            await h.service.create("b", SFTP)
            await h.service.mount("b", "x")
            assert [v.name for v in h.service.list()] == ["a", "b"]
            assert h.service.get("a").mounts == ()
        # The same volume's next call waits for the slow one.
        assert not second_done.is_set()
        release.set()
    assert h.service.get("a").mounts == ("c1", "c2")
    assert h.mounts.ops("mount") == ["a", "b"]


async def test_slow_create_blocks_no_other_volume(tmp_path: Path) -> None:
    h = make(tmp_path)
    entered, release = h.mounts.hold("prepare", "slow")
    async with anyio.create_task_group() as tg:
        tg.start_soon(h.service.create, "slow", SFTP)
        await entered.wait()
        with anyio.fail_after(5):
            await h.service.create("fast", SFTP)
            assert [v.name for v in h.service.list()] == ["fast"]
        release.set()
    assert [v.name for v in h.service.list()] == ["fast", "slow"]


# -- state --------------------------------------------------------------------


async def test_state_saved_after_every_change(h: Harness) -> None:
    await h.service.create("data", SFTP)
    await h.service.mount("data", "c1")
    await h.service.mount("data", "c2")
    assert h.store.last[0]["mounts"] == ["c1", "c2"]
    await h.service.unmount("data", "c2")
    assert h.store.last[0]["mounts"] == ["c1"]
    await h.service.unmount("data", "c1")
    await h.service.remove("data")
    assert len(h.store.saves) == 6
    assert h.store.last == []


async def test_failed_save_does_not_fail_the_call(h: Harness, log_lines: list[str]) -> None:
    h.store.fail_save = OSError(28, "No space left on device")
    await h.service.create("data", SFTP)
    assert h.service.get("data").name == "data"
    assert any("saving the state file failed" in line for line in log_lines)
    h.store.fail_save = None
    await h.service.mount("data", "c1")
    assert h.store.last[0]["name"] == "data"


def _record(name: str, mounts: list[str], **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "mountpoint": f"/old/base/{name}",
        "created": "2023-02-14T10:20:30.123456789+01:00",
        "fs": "",
        "type": "sftp",
        "path": "/srv",
        "options": {"sftp-host": "h"},
        "mounts": mounts,
        **extra,
    }


async def test_restore_readopts_live_workers_and_remounts_others(tmp_path: Path) -> None:
    records = [
        _record("live", ["c1"]),
        _record("dead", ["c2", "c3"]),
        _record("broken", ["c4"]),
        _record("idle", []),
    ]
    h = make(tmp_path, records)
    h.mounts.live.add("live")
    h.mounts.failures[("mount", "broken")] = MountFailed("host unreachable")

    await h.service.restore()

    assert sorted(h.mounts.ops("adopt")) == ["broken", "dead", "live"]
    assert sorted(h.mounts.ops("mount")) == ["broken", "dead"]
    assert h.service.get("live").mounts == ("c1",)
    assert h.service.get("dead").mounts == ("c2", "c3")
    assert h.service.get("broken").mounts == ()  # kept, IDs dropped
    assert h.service.get("idle").mounts == ()
    # Recorded mountpoint and created time are kept; the path option survives.
    assert h.service.path("live") == "/old/base/live"
    assert h.service.get("live").created_at.microsecond == 123456
    volume = h.service._volumes["live"]
    assert volume.spec.backend.root == "/srv"
    assert {r["name"]: r["mounts"] for r in h.store.last}["broken"] == []

    # A further ID on a re-adopted volume mounts nothing new.
    await h.service.mount("live", "c9")
    assert h.mounts.ops("mount").count("live") == 0


async def test_restore_has_pending_uploads_of_unmounted_volumes_finished(
    tmp_path: Path, log_lines: list[str]
) -> None:
    h = make(tmp_path, [_record("mounted", ["c1"]), _record("idle", []), _record("clean", [])])
    h.mounts.dirty.add("idle")
    await h.service.restore()
    # The mounted volume's own worker uploads its pending files; only the others
    # are asked about.
    assert sorted(h.mounts.recovered) == ["clean", "idle"]
    assert any("uploading what volume 'idle' left pending" in line for line in log_lines)
    assert not any("'clean' left pending" in line for line in log_lines)


async def test_calls_wait_for_a_pending_remount(tmp_path: Path) -> None:
    h = make(tmp_path, [_record("a", ["c1"]), _record("b", [])])
    entered, release = h.mounts.hold("mount", "a")
    await h.service.load_state()
    done = anyio.Event()

    async def mount_a() -> None:
        await h.service.mount("a", "c2")
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(h.service.restore_mounts)
        await entered.wait()
        tg.start_soon(mount_a)
        with anyio.fail_after(5):
            assert [v.name for v in h.service.list()] == ["a", "b"]
            await h.service.mount("b", "x")
        assert not done.is_set()
        release.set()
    assert h.mounts.ops("mount") == ["a", "b"]  # "a" mounted once, by the restore
    assert h.service.get("a").mounts == ("c1", "c2")


async def test_unparsable_record_is_kept_verbatim(tmp_path: Path, log_lines: list[str]) -> None:
    bad = _record("bad", ["c1"], options={"no-such-option": "1"})
    nameless: dict[str, object] = {"mountpoint": "/x"}
    h = make(tmp_path, [bad, _record("good", []), nameless])
    await h.service.restore()

    assert [v.name for v in h.service.list()] == ["good"]
    assert h.mounts.ops("adopt") == []
    assert any("cannot restore volume 'bad'" in line for line in log_lines)
    await h.service.create("new", SFTP)
    assert h.store.last[-2:] == [bad, nameless]
    assert [r.get("name") for r in h.store.last] == ["good", "new", "bad", None]

    # Remove of that name drops the kept record.
    await h.service.remove("bad")
    assert bad not in h.store.last


async def test_create_replaces_a_kept_record_of_the_same_name(tmp_path: Path) -> None:
    bad = _record("data", [], options={"no-such-option": "1"})
    h = make(tmp_path, [bad])
    await h.service.restore()
    await h.service.create("data", SFTP)
    assert [r["name"] for r in h.store.last] == ["data"]
    assert h.store.last[0]["options"] == {"sftp-host": "h"}


async def test_forget_state_restores_nothing(tmp_path: Path) -> None:
    h = make(tmp_path, [_record("a", ["c1"])], forget_state=True)
    await h.service.restore()
    assert h.service.list() == []
    assert h.mounts.calls == []


async def test_shutdown_unmounts_and_saves_without_ids(h: Harness) -> None:
    await h.service.create("a", SFTP)
    await h.service.create("b", SFTP)
    await h.service.mount("a", "c1")
    await h.service.shutdown()
    assert h.mounts.shutdown_calls == 1
    assert [(r["name"], r["mounts"]) for r in h.store.last] == [("a", []), ("b", [])]


async def test_sighup_forgets_the_directory_caches_and_changes_nothing_else(
    h: Harness,
) -> None:
    await h.service.create("a", SFTP)
    await h.service.mount("a", "c1")
    saves = len(h.store.saves)
    await h.service.forget_dir_caches()
    assert h.mounts.forget_calls == 1
    assert h.mounts.mounted == {"a"} and len(h.store.saves) == saves


async def test_state_round_trips_through_a_restart(tmp_path: Path) -> None:
    h = make(tmp_path)
    await h.service.create("data", {"remote": ":sftp:/srv", "sftp-host": "h"})
    await h.service.mount("data", "c1")
    saved = h.store.last

    again = make(tmp_path, saved)
    await again.service.restore()
    assert again.service.get("data").mounts == ("c1",)
    assert again.mounts.ops("mount") == ["data"]
    restored = again.service._volumes["data"]
    assert restored.spec == h.service._volumes["data"].spec
    # Same options after the restart are still "the same".
    await again.service.create("data", {"remote": ":sftp:/srv", "sftp-host": "h"})
