"""rclone's union remote: several upstream remotes seen as one tree.

Policies, by rclone's names (its defaults: `epall` for actions, `epmfs` for
creating, `ff` for searching):
- search `ff`/`epff`: a path is read from the first upstream holding it;
  directory listings merge every upstream's, the first upstream winning a name;
- action `epall`: remove, rename and set times act on every writable upstream
  holding the path (`all`: every writable upstream, `epff`/`ff`: the first);
  rewriting an existing file rewrites it wherever the action policy says;
- create `epmfs`/`mfs`: the writable upstream with the most free space, among
  those holding the parent directory (`ep`) or all of them. cloudvol's storages
  report no free space, so they tie, and rclone then takes the first one;
  `epff`/`ff` take the first one as well.
Upstreams ending in `:ro` are never written; `:nc` ones are not created on.
`:writeback` (a cache upstream) is refused by name.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from adapters.storage.backend_options import check_backend_options
from adapters.storage.wrapped import build_wrapped, plain_subpath
from application.ports import RemoteReader, RemoteStorage, RemoteWriter
from domain.errors import OptionError
from domain.paths import parent_of
from domain.remote_entry import RemoteEntry
from domain.volume import BackendSpec
from domain.wrapped_remotes import split_upstreams, upstream_suffix


@dataclass(frozen=True)
class Upstream:
    storage: RemoteStorage
    name: str  # the remote string, for messages
    writable: bool = True  # not :ro
    creatable: bool = True  # neither :ro nor :nc


class _FanOutWriter:
    """One file rewritten on several upstreams: every byte to each of them."""

    def __init__(self, writers: list[RemoteWriter]) -> None:
        self._writers = writers

    async def write(self, data: bytes) -> None:
        for writer in self._writers:
            await writer.write(data)

    async def commit(self) -> None:
        for writer in self._writers:
            await writer.commit()

    async def abort(self) -> None:
        for writer in self._writers:
            await writer.abort()


class UnionStorage:
    def __init__(
        self,
        upstreams: list[Upstream],
        *,
        action_policy: str = "epall",
        create_policy: str = "epmfs",
        search_policy: str = "ff",
    ) -> None:
        if not upstreams:
            raise OptionError("union option 'upstreams' names no remote")
        self._upstreams = upstreams
        self._action = action_policy
        self._create = create_policy
        self._search = search_policy

    # policies

    async def _holding(self, path: str) -> list[tuple[Upstream, RemoteEntry]]:
        found: list[tuple[Upstream, RemoteEntry] | None] = [None] * len(self._upstreams)

        async def look(index: int, upstream: Upstream) -> None:
            try:
                found[index] = (upstream, await upstream.storage.stat(path))
            except FileNotFoundError:
                pass

        async with anyio.create_task_group() as group:
            for index, upstream in enumerate(self._upstreams):
                group.start_soon(look, index, upstream)
        return [item for item in found if item is not None]

    async def _search_one(self, path: str) -> tuple[Upstream, RemoteEntry]:
        for upstream in self._upstreams:  # ff and epff agree for a single path
            try:
                return upstream, await upstream.storage.stat(path)
            except FileNotFoundError:
                continue
        raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)

    async def _act_on(self, path: str) -> list[tuple[Upstream, RemoteEntry]]:
        """The upstreams an action on existing `path` goes to (action policy)."""
        holding = await self._holding(path)
        if not holding:
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
        writable = [(u, e) for u, e in holding if u.writable]
        if not writable:
            raise OSError(errno.EROFS, "only read-only upstreams hold it", path)
        if self._action in ("epff", "ff"):
            return writable[:1]
        return writable

    async def _create_on(self, path: str) -> Upstream:
        """The upstream a new `path` goes to (create policy)."""
        candidates = [u for u in self._upstreams if u.creatable]
        if not candidates:
            raise OSError(errno.EROFS, "no upstream can be created on", path)
        if self._create.startswith("ep"):
            parent = parent_of(path)
            for upstream in candidates:
                try:
                    entry = await upstream.storage.stat(parent)
                except FileNotFoundError:
                    continue
                if not entry.is_dir:
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory", parent)
                return upstream
            await self._search_one(parent)  # FileNotFoundError, or a read-only parent:
            raise OSError(errno.EROFS, "its directory is on read-only upstreams only", path)
        return candidates[0]

    # the port

    async def check(self) -> None:
        async with anyio.create_task_group() as group:
            for upstream in self._upstreams:
                group.start_soon(upstream.storage.check)

    async def stat(self, path: str) -> RemoteEntry:
        return (await self._search_one(path))[1]

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        listings: list[list[RemoteEntry] | None] = [None] * len(self._upstreams)
        not_dir: list[bool] = []

        async def list_one(index: int, upstream: Upstream) -> None:
            try:
                listings[index] = await upstream.storage.list_dir(path)
            except FileNotFoundError:
                pass
            except NotADirectoryError:
                not_dir.append(True)

        async with anyio.create_task_group() as group:
            for index, upstream in enumerate(self._upstreams):
                group.start_soon(list_one, index, upstream)
        present = [listing for listing in listings if listing is not None]
        if not present:
            if not_dir:
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
        merged: dict[str, RemoteEntry] = {}
        for listing in present:
            for entry in listing:
                merged.setdefault(entry.name, entry)
        return sorted(merged.values(), key=lambda e: e.name)

    async def open_reader(self, path: str) -> RemoteReader:
        upstream, _ = await self._search_one(path)
        return await upstream.storage.open_reader(path)

    async def open_writer(self, path: str) -> RemoteWriter:
        holding = await self._holding(path)
        if any(entry.is_dir for _, entry in holding):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        if not holding:
            return await (await self._create_on(path)).storage.open_writer(path)
        targets = await self._act_on(path)
        writers: list[RemoteWriter] = []
        try:
            for upstream, _ in targets:
                writers.append(await upstream.storage.open_writer(path))
        except BaseException:
            for writer in writers:
                await writer.abort()
            raise
        return writers[0] if len(writers) == 1 else _FanOutWriter(writers)

    async def mkdir(self, path: str) -> None:
        if await self._holding(path):
            raise FileExistsError(errno.EEXIST, "file exists", path)
        await (await self._create_on(path)).storage.mkdir(path)

    async def rmdir(self, path: str) -> None:
        targets = await self._act_on(path)
        if not targets[0][1].is_dir:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        if await self.list_dir(path):
            raise OSError(errno.ENOTEMPTY, "directory not empty", path)
        await self._each(targets, lambda u: u.storage.rmdir(path))

    async def remove(self, path: str) -> None:
        targets = await self._act_on(path)
        if targets[0][1].is_dir:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        await self._each(targets, lambda u: u.storage.remove(path))

    async def rename(self, src: str, dst: str) -> None:
        targets = await self._act_on(src)
        await self._each(targets, lambda u: u.storage.rename(src, dst))

    async def set_mtime(self, path: str, mtime: float) -> None:
        targets = await self._act_on(path)
        await self._each(targets, lambda u: u.storage.set_mtime(path, mtime))

    async def _each(
        self,
        targets: list[tuple[Upstream, RemoteEntry]],
        act: Callable[[Upstream], Awaitable[None]],
    ) -> None:
        for upstream, _ in targets:
            await act(upstream)

    async def aclose(self) -> None:
        for upstream in self._upstreams:
            await upstream.storage.aclose()


def build_union_storage(spec: BackendSpec) -> UnionStorage:
    checked = check_backend_options("union", spec.options)
    subpath = plain_subpath(spec.root)
    upstreams: list[Upstream] = []
    for item in split_upstreams(checked.text("upstreams")):
        remote, mode = upstream_suffix(item)
        if mode == "writeback":
            raise OptionError(f"union upstream {remote!r}: ':writeback' is not supported yet")
        upstreams.append(
            Upstream(
                build_wrapped(remote, subpath),
                remote,
                writable=mode != "ro",
                creatable=mode not in ("ro", "nc"),
            )
        )
    return UnionStorage(
        upstreams,
        action_policy=checked.text("action_policy"),
        create_policy=checked.text("create_policy"),
        search_policy=checked.text("search_policy"),
    )
