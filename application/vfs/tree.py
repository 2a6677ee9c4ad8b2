"""The VFS's directory cache: nodes by inode, and listings that stay fresh for
`dir_cache_time` and are patched in place by changes made through the VFS.

A listing keeps what the remote does not know yet: files created through the
VFS and not uploaded, files being written, and dirty files a previous worker
left in the cache; files with local changes keep their local size and time.
"""

from __future__ import annotations

import asyncio
import errno
import time
import unicodedata
from collections.abc import Callable

from loguru import logger

from application.ports import RemoteStorage
from application.vfs.cache.null import FileCache
from application.vfs.nodes import ROOT_INODE, Node
from domain.filters import Filter
from domain.links import show_links
from domain.paths import join
from domain.remote_entry import RemoteEntry
from domain.volume import VfsOptions

# Directories listed at once by --vfs-refresh and --exclude-if-present.
_PARALLEL_LISTINGS = 4


class DirectoryTree:
    def __init__(
        self,
        storage: RemoteStorage,
        options: VfsOptions,
        cache: FileCache,
        clock: Callable[[], float],
        path_filter: Filter | None = None,
    ) -> None:
        """`path_filter`: rclone's filter flags; what it excludes is not shown."""
        self._storage = storage
        self._filter = path_filter if path_filter is not None and path_filter.active else None
        self._options = options
        self._cache = cache
        self._clock = clock
        self._started = time.time()
        root = Node(ROOT_INODE, "", True, 0, self._started, None)
        self._nodes: dict[int, Node] = {ROOT_INODE: root}
        self._next_inode = ROOT_INODE + 1

    @property
    def root(self) -> Node:
        return self._nodes[ROOT_INODE]

    def forget_all(self) -> None:
        """Mark every cached listing stale (SIGHUP). Nodes, and so inode numbers,
        stay: the next listing reuses them by name."""
        for node in self._nodes.values():
            node.listed_at = None

    def node(self, inode: int) -> Node:
        try:
            return self._nodes[inode]
        except KeyError:
            raise OSError(errno.ENOENT, f"unknown inode {inode}") from None

    def directory(self, inode: int) -> Node:
        node = self.node(inode)
        if not node.is_dir:
            raise OSError(errno.ENOTDIR, f"{node.path!r} is not a directory")
        return node

    def new_node(self, parent: Node, name: str, is_dir: bool, size: int, mtime: float) -> Node:
        if is_dir and mtime <= 0:
            mtime = self._started  # remotes without directory times
        node = Node(self._next_inode, join(parent.path, name), is_dir, size, mtime, parent)
        self._next_inode += 1
        self._nodes[node.inode] = node
        return node

    def rebind(self, node: Node) -> None:
        """`node` answers to its inode number from now on (the other name of a
        hard link that was unlinked)."""
        self._nodes[node.inode] = node

    def node_at(self, path: str) -> Node | None:
        """The node already known for `path`, without listing anything."""
        node = self.root
        for name in (p for p in path.split("/") if p):
            if node.children is None or name not in node.children:
                return None
            node = node.children[name]
        return node

    def find(self, children: dict[str, Node], name: str) -> Node | None:
        node = children.get(name)
        if node is None and self._options.case_insensitive:
            folded = name.casefold()
            matches = [c for n, c in children.items() if n.casefold() == folded]
            if len(matches) == 1:
                node = matches[0]
        return node

    async def child(self, parent: Node, name: str) -> Node:
        node = self.find(await self.listing(parent), name)
        if node is None:
            raise OSError(errno.ENOENT, f"{join(parent.path, name)!r} not found")
        return node

    @staticmethod
    def attach(parent: Node, node: Node) -> None:
        if parent.children is None:
            parent.children = {}
        parent.children[node.name] = node
        node.parent = parent

    @staticmethod
    def detach(node: Node) -> None:
        parent = node.parent
        if parent is not None and parent.children is not None:
            if parent.children.get(node.name) is node:
                del parent.children[node.name]

    def move(self, node: Node, parent: Node, path: str) -> None:
        """Move `node` (and all below it) to `path` in the directory `parent`."""
        self.detach(node)
        node.parent = parent
        _repath(node, path)
        self.attach(parent, node)

    def _fresh(self, d: Node) -> bool:
        return (
            d.children is not None
            and d.listed_at is not None
            and self._clock() - d.listed_at < self._options.dir_cache_time
        )

    async def listing(self, d: Node) -> dict[str, Node]:
        if self._fresh(d):
            assert d.children is not None
            return d.children
        async with d.list_lock:
            if self._fresh(d):
                assert d.children is not None
                return d.children
            entries = await self._storage.list_dir(d.path)
            if self._options.links:
                entries = show_links(entries)
            # Filters see the names the volume shows: a link's, not its .rclonelink file's.
            entries = await self._shown(d.path, entries)
            old = d.children or {}
            new: dict[str, Node] = {}
            for entry in entries:
                name = entry.name
                if name in ("", ".", "..") or "/" in name or "\0" in name:
                    logger.warning("{!r}: skipping unusable name {!r}", d.path, name)
                    continue
                child = old.get(name)
                if child is not None and (child.is_dir, child.is_link) == (
                    entry.is_dir,
                    entry.is_link,
                ):
                    child.take_remote_details(entry)
                    # An upload in progress, or local changes, know better.
                    if child.writers == 0:
                        if not self._cache.holds_local_changes(child.path):
                            child.size = entry.size
                            if entry.mtime > 0 or not child.is_dir:
                                child.mtime = entry.mtime
                        child.on_remote = True
                else:
                    child = self.new_node(d, name, entry.is_dir, entry.size, entry.mtime)
                    child.take_remote_details(entry)
                    self._follow_local_copy(child)
                new[name] = child
            for name, child in old.items():
                # Files created through the VFS and not uploaded yet are not at the
                # remote, but they exist for the user.
                if name not in new and (not child.on_remote or child.writers > 0):
                    new[name] = child
            # Dirty files a previous worker left: they exist for the user too.
            for item in self._cache.dirty_children(d.path):
                name = item.path.rpartition("/")[2]
                if name not in new:
                    child = self.new_node(d, name, False, item.size, item.mtime)
                    child.follow(item)
                    child.on_remote = False
                    new[name] = child
            d.children = new
            d.listed_at = self._clock()
            return new

    async def _shown(self, path: str, entries: list[RemoteEntry]) -> list[RemoteEntry]:
        """The entries of directory `path` that the filters and
        --vfs-block-norm-dupes leave shown."""
        flt = self._filter
        if flt is not None:
            entries = [
                e
                for e in entries
                if (
                    flt.include_dir(join(path, e.name))
                    if e.is_dir
                    else flt.include_file(join(path, e.name), e.size, e.mtime)
                )
            ]
            if flt.exclude_if_present:
                entries = await self._without_marked_dirs(path, entries, flt)
        if self._options.block_norm_dupes:
            entries = _without_norm_dupes(path, entries)
        return entries

    async def _without_marked_dirs(
        self, path: str, entries: list[RemoteEntry], flt: Filter
    ) -> list[RemoteEntry]:
        # One listing per subdirectory (as rclone does): the cost of the flag.
        dirs = [e for e in entries if e.is_dir]
        hidden: set[str] = set()
        for start in range(0, len(dirs), _PARALLEL_LISTINGS):
            batch = dirs[start : start + _PARALLEL_LISTINGS]
            listings = await asyncio.gather(
                *(self._storage.list_dir(join(path, e.name)) for e in batch)
            )
            for entry, listing in zip(batch, listings, strict=True):
                if flt.marks_excluded(c.name for c in listing if not c.is_dir):
                    hidden.add(entry.name)
        return [e for e in entries if not (e.is_dir and e.name in hidden)]

    async def refresh(self) -> int:
        """--vfs-refresh: list every directory shown, breadth first, so that the
        first look at any of them is served from the cache. Returns how many."""
        listed = 0
        pending = [self.root]
        while pending:
            batch, pending = pending[:_PARALLEL_LISTINGS], pending[_PARALLEL_LISTINGS:]
            listings = await asyncio.gather(*(self.listing(d) for d in batch))
            listed += len(batch)
            for children in listings:
                pending.extend(c for c in children.values() if c.is_dir)
        return listed

    def _follow_local_copy(self, node: Node) -> None:
        """Give a file node the size and time of its local changes, if any."""
        if node.is_dir or node.is_link:
            return
        item = self._cache.item(node.path)
        if item is not None and item.holds_local_changes:
            node.follow(item)


def _repath(node: Node, path: str) -> None:
    node.path = path
    for name, child in (node.children or {}).items():
        _repath(child, join(path, name))


def _without_norm_dupes(path: str, entries: list[RemoteEntry]) -> list[RemoteEntry]:
    """One entry per Unicode-normalised (NFC) name: the one already in NFC if
    there is one, else the first in code-point order; the others are logged."""
    groups: dict[str, list[RemoteEntry]] = {}
    for entry in entries:
        groups.setdefault(unicodedata.normalize("NFC", entry.name), []).append(entry)
    shown = []
    for norm, group in groups.items():
        if len(group) == 1:
            shown.append(group[0])
            continue
        group.sort(key=lambda e: (e.name != norm, e.name))
        shown.append(group[0])
        logger.error(
            "{!r}: {} names are {!r} once normalised; showing {!r}, hiding {}",
            path,
            len(group),
            norm,
            group[0].name,
            ", ".join(repr(e.name) for e in group[1:]),
        )
    return shown
