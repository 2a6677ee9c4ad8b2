"""storage_common: rename(2)'s checks around a store's own moves, and errors in
the port's terms; S3Bucket's listing pages, against a fake client."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from adapters.storage.s3_bucket import S3Bucket
from adapters.storage.s3_options import S3Options
from adapters.storage.storage_common import Found, Mover, port_error
from domain.errors import RemoteUnavailable
from domain.remote_entry import RemoteEntry

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Tree:
    """Paths and whether each is a directory; records the moves asked for."""

    def __init__(self, **kinds: bool) -> None:
        self.kinds = {"": True, **{k.replace("__", "/"): v for k, v in kinds.items()}}
        self.moves: list[tuple[str, str, str]] = []

    async def find(self, path: str) -> Found:
        if path not in self.kinds:
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        return Found(RemoteEntry(path.rsplit("/", 1)[-1], self.kinds[path], 0, 0.0))

    async def rmdir(self, path: str) -> None:
        if any(p.startswith(f"{path}/") for p in self.kinds):
            raise OSError(errno.ENOTEMPTY, "directory not empty", path)
        self.moves.append(("rmdir", path, ""))

    async def move_file(self, src: str, dst: str, source: RemoteEntry) -> None:
        self.moves.append(("file", src, dst))

    async def move_dir(self, src: str, dst: str) -> None:
        self.moves.append(("dir", src, dst))

    def mover(self) -> Mover:
        return Mover(self.find, self.rmdir, self.move_file, self.move_dir)


async def test_rename_moves_files_and_directories() -> None:
    tree = Tree(f=False, d=True, e=True)
    await tree.mover().rename("f", "g")
    await tree.mover().rename("d", "e")  # over an empty directory: it goes first
    await tree.mover().rename("f", "f")  # onto itself: nothing to do
    assert tree.moves == [("file", "f", "g"), ("rmdir", "e", ""), ("dir", "d", "e")]


@pytest.mark.parametrize(
    ("src", "dst", "code"),
    [
        ("missing", "x", errno.ENOENT),
        ("f", "d", errno.EISDIR),  # a file over a directory
        ("d", "f", errno.ENOTDIR),  # a directory over a file
        ("d", "d/sub", errno.EINVAL),  # into itself
        ("d", "full", errno.ENOTEMPTY),
        ("f", "nowhere/f", errno.ENOENT),  # no parent
        ("f", "f2/x", errno.ENOTDIR),  # the parent is a file
    ],
)
async def test_rename_refuses_what_rename2_refuses(src: str, dst: str, code: int) -> None:
    tree = Tree(f=False, f2=False, d=True, full=True, full__x=False)
    with pytest.raises(OSError) as info:
        await tree.mover().rename(src, dst)
    assert info.value.errno == code
    assert not [m for m in tree.moves if m[0] != "rmdir"]


def test_errors_take_the_port_form_without_secrets() -> None:
    lost = port_error(ConnectionResetError("reset, key SECRET"), "p", "demo", ["SECRET"])
    assert isinstance(lost, RemoteUnavailable) and "SECRET" not in str(lost)
    missing = port_error(FileNotFoundError("gone"), "p", "demo", [])
    assert isinstance(missing, FileNotFoundError) and missing.filename == "p"
    odd = port_error(RuntimeError("boom"), "p", "demo", [])
    assert isinstance(odd, OSError) and odd.errno == errno.EIO and "RuntimeError" in str(odd)


class PagingClient:
    """ListObjects v1 without NextMarker: the next page starts after the last key."""

    bucket = "b"

    def __init__(self, keys: list[str]) -> None:
        self.keys, self.markers = sorted(keys), []

    async def call(self, method: str, **kwargs: Any) -> Any:
        assert method == "list_objects"
        self.markers.append(kwargs.get("Marker", ""))
        after = [k for k in self.keys if k > kwargs.get("Marker", "")]
        page = after[: kwargs["MaxKeys"]]
        return {"Contents": [{"Key": k} for k in page], "IsTruncated": len(after) > len(page)}


async def test_listing_v1_pages_follow_the_last_key() -> None:
    options = S3Options.parse({"list_chunk": 2, "provider": "Other"})
    client = PagingClient(["a", "b", "c", "d", "e"])
    fake: Any = client
    bucket = S3Bucket(fake, options, "s3 fake")
    keys = [c["Key"] async for page in bucket.pages("", delimiter=False) for c in page["Contents"]]
    assert keys == ["a", "b", "c", "d", "e"]
    assert client.markers == ["", "b", "d"]
