"""A file node alone: its size and time while a cache copy holds local changes,
and its uncached writers and the commits operations wait for."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from application.vfs.nodes import Node

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Copy:
    size: int
    mtime: float
    holds_local_changes: bool = True
    removed: bool = False


@dataclass
class Writer:
    in_progress: bool = True
    upload_started: bool = False
    closed: bool = False
    pending_mtime: float | None = None
    truncated_to: int | None = None

    async def truncate(self, size: int) -> None:
        self.truncated_to = size


def file_node() -> Node:
    return Node(2, "f", False, 10, 1.0, None)


def test_size_and_time_follow_the_copy_while_it_holds_changes() -> None:
    node, copy = file_node(), Copy(10, 1.0)
    node.follow(copy)
    copy.size, copy.mtime = 25, 2.0
    assert (node.size, node.mtime) == (25, 2.0)
    node.settle_local()  # uploaded: what it had is the node's own
    copy.holds_local_changes = False
    copy.size = 99
    assert (node.size, node.mtime) == (25, 2.0)
    node.size = 30  # a listing of the remote says so
    assert node.size == 30
    copy.holds_local_changes, copy.removed = True, True
    assert node.size == 30  # a removed copy says nothing


async def test_writers_and_their_state() -> None:
    node = file_node()
    waiting, started = Writer(), Writer(in_progress=False, upload_started=True)
    node.add_writer(waiting)
    node.add_writer(started)
    assert node.writers == 2
    assert node.pending_writers() == [waiting]
    assert node.uploading()
    node.remove_writer(started)
    assert not node.uploading() and node.writers == 1


async def test_waiters_wake_when_the_commit_lands() -> None:
    node = file_node()
    with node.committing():
        waiter = asyncio.ensure_future(node.commits_landed())
        for _ in range(10):
            await asyncio.sleep(0)
        assert not waiter.done()  # held while the commit runs...
    assert await asyncio.wait_for(waiter, 5.0)  # ...and woken once it lands


async def test_uploads_landed_waits_for_the_writers_too() -> None:
    node, writer = file_node(), Writer()
    node.add_writer(writer)
    waiter = asyncio.ensure_future(node.uploads_landed())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not waiter.done()
    node.remove_writer(writer)
    assert await asyncio.wait_for(waiter, 5.0)
