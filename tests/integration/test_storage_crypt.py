"""The crypt remote against Debian's rclone 1.60.1, both ways, in every
name-encryption mode: rclone copies a tree in and cloudvol reads it byte for
byte; cloudvol writes and rclone copies it out. The shared storage contract runs
with rclone as the outside view, over a local directory and over SFTP."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.storage.crypt.cipher import decrypted_size, encrypted_size
from adapters.storage.factory import DefaultStorageFactory
from adapters.storage.obscure import obscure
from application.ports import RemoteStorage
from domain.errors import OptionError, RemoteUnavailable
from domain.volume import BackendSpec
from domain.volume_options import parse_volume_options
from tests.integration.fixtures import sshd as sshd_fixtures
from tests.integration.fixtures.rclone_crypt import (
    PASSWORD,
    SALT,
    crypt_options,
    write_config,
)
from tests.storage_contract import Backend, StorageContract, get, put

sshd = sshd_fixtures.sshd
SshdServer = sshd_fixtures.SshdServer

pytestmark = pytest.mark.anyio

MODES: dict[str, dict[str, str]] = {
    "standard": {},
    "base64": {"filename_encoding": "base64"},
    "base32768": {"filename_encoding": "base32768"},
    "plain-dirs": {"directory_name_encryption": "false"},
    "obfuscate": {"filename_encryption": "obfuscate"},
    "off": {"filename_encryption": "off"},
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def crypt_spec(underlying: str, options: dict[str, str], root: str = "") -> BackendSpec:
    """The crypt backend as a volume's -o options give it."""
    volume_opts = {"type": "crypt", "crypt-remote": underlying}
    volume_opts.update({f"crypt-{k.replace('_', '-')}": v for k, v in options.items()})
    if root:
        volume_opts["path"] = root
    return parse_volume_options(volume_opts).spec.backend


def build(spec: BackendSpec) -> RemoteStorage:
    return DefaultStorageFactory(fsspec_fallback=False).create(spec)


def sftp_remote(server: SshdServer) -> str:
    return (
        f":sftp,host={server.host},port={server.port},user={server.user},"
        f"key_file='{server.key_file}',known_hosts_file='{server.known_hosts_file}':"
        f"{server.data_dir}"
    )


@pytest.fixture(params=["standard", "base32768", "obfuscate", "off", "sftp"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sftp":
        server: SshdServer = request.getfixturevalue("sshd")
        underlying, options = sftp_remote(server), crypt_options()
    else:
        (tmp_path / "under").mkdir()
        underlying, options = str(tmp_path / "under"), crypt_options(**MODES[request.param])
    view = write_config(tmp_path / "rclone.conf", underlying, options)
    storage = build(crypt_spec(underlying, options))
    await storage.check()
    try:
        yield Backend(storage, view)
    finally:
        await storage.aclose()


class TestCryptStorage(StorageContract):
    """The shared behaviour, rclone reading what cloudvol wrote."""


# --- interoperability, each mode ----------------------------------------------------

TREE: dict[str, bytes] = {
    "empty": b"",
    "one": b"1",
    "chunk-less-1": os.urandom(65535),
    "chunk": os.urandom(65536),
    "chunk-plus-1": os.urandom(65537),
    "d/three chunks and a bit": os.urandom(3 * 65536 + 1234),
    "d/Ünïcödé ñame.txt": b"unicode\n",
    "d/中文 名字/深い.bin": os.urandom(5000),
    "d/e/f/deep": b"deep\n",
    "quote!mark!.txt": b"!\n",
}


def make_tree(root: Path) -> None:
    for name, data in TREE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_rclone_writes_and_cloudvol_reads(mode: str, tmp_path: Path) -> None:
    source, under = tmp_path / "source", tmp_path / "under"
    source.mkdir()
    under.mkdir()
    make_tree(source)
    rclone = write_config(tmp_path / "rclone.conf", str(under), crypt_options(**MODES[mode]))
    rclone.rclone("copy", str(source), "c:")

    storage = build(crypt_spec(str(under), rclone.options))
    await storage.check()
    try:
        assert sorted(e.name for e in await storage.list_dir("")) == [
            "chunk", "chunk-less-1", "chunk-plus-1", "d", "empty", "one", "quote!mark!.txt",
        ]  # fmt: skip
        for name, data in TREE.items():
            entry = await storage.stat(name)
            assert entry.size == len(data), name
            assert digest(await get(storage, name)) == digest(data), name
            assert await get(storage, name, 65530, 10) == data[65530:65540], name
        assert {e.name for e in await storage.list_dir("d/中文 名字")} == {"深い.bin"}
    finally:
        await storage.aclose()
    if mode != "off":
        assert not any("chunk" in p.name for p in under.rglob("*")), "names are encrypted"


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_cloudvol_writes_and_rclone_reads(mode: str, tmp_path: Path) -> None:
    under, out = tmp_path / "under", tmp_path / "out"
    under.mkdir()
    rclone = write_config(tmp_path / "rclone.conf", str(under), crypt_options(**MODES[mode]))
    storage = build(crypt_spec(str(under), rclone.options))
    await storage.check()
    try:
        for name, data in TREE.items():
            parts = name.split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                try:
                    await storage.mkdir(directory)
                except FileExistsError:
                    pass
            await put(storage, name, data)
    finally:
        await storage.aclose()
    for path in under.rglob("*"):
        if path.is_file():
            assert decrypted_size(path.stat().st_size) is not None
    rclone.rclone("copy", "c:", str(out))
    copied = {
        str(p.relative_to(out)): digest(p.read_bytes()) for p in out.rglob("*") if p.is_file()
    }
    assert copied == {name: digest(data) for name, data in TREE.items()}
    # rclone's own check of the encrypted files against the plain ones
    rclone.rclone("cryptcheck", str(out), "c:")


async def test_a_volume_below_the_crypt_root(tmp_path: Path) -> None:
    under = tmp_path / "under"
    under.mkdir()
    rclone = write_config(tmp_path / "rclone.conf", str(under), crypt_options())
    storage = build(crypt_spec(str(under), rclone.options, root="photos/2024"))
    await storage.check()
    try:
        await put(storage, "a.jpg", b"jpeg")
    finally:
        await storage.aclose()
    assert rclone.read("photos/2024/a.jpg") == b"jpeg"


@pytest.mark.parametrize("mode", ["standard", "obfuscate", "off"])
async def test_a_wrong_password_is_refused_at_check(mode: str, tmp_path: Path) -> None:
    under = tmp_path / "under"
    under.mkdir()
    (tmp_path / "f").write_bytes(b"secret data")
    rclone = write_config(tmp_path / "rclone.conf", str(under), crypt_options(**MODES[mode]))
    rclone.rclone("copy", str(tmp_path / "f"), "c:")
    wrong = {**rclone.options, "password": obscure("not the password")}
    storage = build(crypt_spec(str(under), wrong))
    with pytest.raises(RemoteUnavailable) as excinfo:
        await storage.check()
    message = str(excinfo.value)
    assert "do not decrypt with this password" in message
    for secret in ("not the password", wrong["password"], PASSWORD, SALT):
        assert secret not in message
    await storage.aclose()
    salted = {**rclone.options, "password2": obscure("other salt")}
    storage = build(crypt_spec(str(under), salted))
    with pytest.raises(RemoteUnavailable, match="do not decrypt"):
        await storage.check()
    await storage.aclose()


async def test_no_data_encryption_keeps_contents_plain(tmp_path: Path) -> None:
    under = tmp_path / "under"
    under.mkdir()
    rclone = write_config(
        tmp_path / "rclone.conf", str(under), crypt_options(no_data_encryption="true")
    )
    storage = build(crypt_spec(str(under), rclone.options))
    await storage.check()
    try:
        await put(storage, "plain.txt", b"readable")
    finally:
        await storage.aclose()
    (stored,) = [p for p in under.iterdir()]
    assert stored.read_bytes() == b"readable" and stored.name != "plain.txt"
    assert rclone.read("plain.txt") == b"readable"


def test_sizes_follow_rclones_chunking() -> None:
    for size in (0, 1, 65535, 65536, 65537, 10 * 65536 + 5):
        assert decrypted_size(encrypted_size(size)) == size
    assert decrypted_size(32 + 10) is None  # a chunk shorter than its tag
    assert decrypted_size(31) is None


def test_options_are_checked_by_name(tmp_path: Path) -> None:
    base = {"type": "crypt", "crypt-remote": str(tmp_path), "crypt-password": obscure("p")}
    with pytest.raises(OptionError, match="crypt-filename-encryption: unknown value"):
        parse_volume_options({**base, "crypt-filename-encryption": "rot13"})
    with pytest.raises(OptionError, match="crypt-show-mapping: not supported yet"):
        parse_volume_options({**base, "crypt-show-mapping": "true"})
    with pytest.raises(OptionError, match="crypt-password is required"):
        parse_volume_options({"type": "crypt", "crypt-remote": str(tmp_path)})
