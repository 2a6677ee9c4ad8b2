"""alias and union remotes over local directories and SFTP, through the shared
storage contract; then union's policies (rclone's defaults: epall, epmfs, ff)."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.storage.factory import DefaultStorageFactory
from application.ports import RemoteStorage
from domain.rclone_config import parse_rclone_config
from domain.volume_options import parse_volume_options
from tests.integration.fixtures import sshd as sshd_fixtures
from tests.storage_contract import Backend, PathView, StorageContract, get, put

sshd = sshd_fixtures.sshd
SshdServer = sshd_fixtures.SshdServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def storage_for(volume_opts: dict[str, str], config_text: str = "") -> RemoteStorage:
    config = parse_rclone_config(config_text, "/etc/rclone.conf") if config_text else None
    spec = parse_volume_options(volume_opts, {}, config).spec.backend
    return DefaultStorageFactory(fsspec_fallback=False).create(spec)


def sftp_section(server: SshdServer) -> str:
    return (
        f"[files]\ntype = sftp\nhost = {server.host}\nport = {server.port}\n"
        f"user = {server.user}\nkey_file = {server.key_file}\n"
        f"known_hosts_file = {server.known_hosts_file}\n\n"
    )


@pytest.fixture(params=["alias-local", "alias-sftp", "union"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "alias-sftp":
        server: SshdServer = request.getfixturevalue("sshd")
        (server.data_dir / "inside").mkdir()
        config = sftp_section(server) + f"[al]\ntype = alias\nremote = files:{server.data_dir}\n"
        storage = storage_for({"remote": "al:inside"}, config)
        root = server.data_dir / "inside"
    elif request.param == "alias-local":
        root = tmp_path / "aliased" / "sub"
        root.mkdir(parents=True)
        storage = storage_for({"remote": f":alias,remote='{tmp_path / 'aliased'}':sub"})
    else:
        root, other = tmp_path / "first", tmp_path / "second"
        root.mkdir()
        other.mkdir()
        storage = storage_for({"type": "union", "union-upstreams": f"{root} {other}"})
    await storage.check()
    try:
        yield Backend(storage, PathView(root))
    finally:
        await storage.aclose()


class TestAliasAndUnionStorage(StorageContract):
    """The shared behaviour (a union creates on its first upstream: epmfs with no
    free-space figures, as rclone with upstreams that report none)."""


@pytest.fixture
def three(tmp_path: Path) -> tuple[Path, Path, Path]:
    dirs = (tmp_path / "a", tmp_path / "b", tmp_path / "ro")
    for d in dirs:
        d.mkdir()
    return dirs


async def test_union_merges_listings_and_reads_first_found(three: tuple[Path, Path, Path]) -> None:
    a, b, ro = three
    (b / "only-b").write_bytes(b"from b")
    (a / "both").write_bytes(b"from a")
    (b / "both").write_bytes(b"from b, hidden")
    (ro / "d").mkdir()
    (ro / "d" / "ro-file").write_bytes(b"read-only")
    storage = storage_for({"type": "union", "union-upstreams": f"{a} {b} {ro}:ro"})
    await storage.check()
    try:
        assert [e.name for e in await storage.list_dir("")] == ["both", "d", "only-b"]
        assert await get(storage, "both") == b"from a"  # search policy ff
        assert await get(storage, "d/ro-file") == b"read-only"
        # epall: a rewrite and a removal act on every upstream holding the file
        await put(storage, "both", b"new")
        assert (a / "both").read_bytes() == (b / "both").read_bytes() == b"new"
        await storage.remove("both")
        assert not (a / "both").exists() and not (b / "both").exists()
        # epmfs: created where the parent exists, never on a read-only upstream
        with pytest.raises(OSError) as excinfo:
            await put(storage, "d/new", b"x")
        assert excinfo.value.errno == errno.EROFS
        await put(storage, "only-b-dir-file", b"x")
        assert (a / "only-b-dir-file").exists()
        with pytest.raises(OSError) as excinfo:
            await storage.remove("d/ro-file")
        assert excinfo.value.errno == errno.EROFS
    finally:
        await storage.aclose()


async def test_union_no_create_upstream_is_only_updated(three: tuple[Path, Path, Path]) -> None:
    a, b, _ = three
    (a / "existing").write_bytes(b"old")
    storage = storage_for(
        {"type": "union", "union-upstreams": f"{a}:nc {b}", "union-create-policy": "ff"}
    )
    await storage.check()
    try:
        await put(storage, "existing", b"updated")
        await put(storage, "fresh", b"new")
    finally:
        await storage.aclose()
    assert (a / "existing").read_bytes() == b"updated"
    assert (b / "fresh").read_bytes() == b"new" and not (a / "fresh").exists()
