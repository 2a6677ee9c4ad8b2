"""The ports the application needs; adapters implement them, tests fake them.

Conventions shared by every `RemoteStorage`:
- paths are relative to the volume's root, normalised by `domain.paths`
  ("" is the root; no leading slash, no "." or ".." components);
- a missing path raises FileNotFoundError, an existing target of mkdir
  FileExistsError, a non-empty rmdir OSError(ENOTEMPTY), a file where a directory
  is needed NotADirectoryError, and so on: OSError subclasses with the right errno;
- a remote that cannot be reached, or refuses our credentials, raises
  `domain.errors.RemoteUnavailable` whose message is the real cause, secrets removed.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from domain.metadata import FileMetadata
from domain.rclone_config import RcloneConfig
from domain.remote_entry import RemoteEntry
from domain.volume import BackendSpec, Volume


class RemoteReader(Protocol):
    """An open remote file for reading at any offset."""

    async def read(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes at `offset`; fewer only at the end of the file."""
        ...

    async def close(self) -> None: ...


class RemoteWriter(Protocol):
    """An upload in progress: bytes are appended in order, then committed."""

    async def write(self, data: bytes) -> None: ...

    async def commit(self) -> None:
        """Finish the upload: when this returns, the whole file is on the remote."""
        ...

    async def abort(self) -> None:
        """Give up the upload, leaving no partial file behind where possible."""
        ...


class RemoteStorage(Protocol):
    async def check(self) -> None:
        """Prove the remote answers and the root is usable (used by Create)."""
        ...

    async def stat(self, path: str) -> RemoteEntry: ...

    async def list_dir(self, path: str) -> list[RemoteEntry]: ...

    async def open_reader(self, path: str) -> RemoteReader: ...

    async def open_writer(self, path: str) -> RemoteWriter:
        """Start writing `path` from empty (the old content, if any, is replaced at commit)."""
        ...

    async def mkdir(self, path: str) -> None: ...

    async def rmdir(self, path: str) -> None: ...

    async def remove(self, path: str) -> None: ...

    async def rename(self, src: str, dst: str) -> None:
        """Move `src` to `dst`, replacing a file at `dst`."""
        ...

    async def set_mtime(self, path: str, mtime: float) -> None: ...

    async def aclose(self) -> None:
        """Release connections; the storage is not used afterwards."""
        ...


@runtime_checkable
class SupportsMetadata(Protocol):
    """A `RemoteStorage` that keeps modes, owners and times (`--metadata`).

    Optional: the VFS checks for it at run time, so storages (and wrappers) that
    cannot keep metadata need not know of it."""

    async def set_metadata(self, path: str, metadata: FileMetadata) -> None:
        """Store the fields of `metadata` that are not None on `path` (file or
        directory); the others stay as they are. A field the backend cannot
        represent raises OSError(EOVERFLOW or EPERM) naming it."""
        ...


@runtime_checkable
class SupportsHardLinks(Protocol):
    """A `RemoteStorage` that may make hard links (SFTP's hardlink@openssh.com)."""

    async def hard_links_supported(self) -> bool:
        """Whether `hard_link` can work on this remote (asks the server once)."""
        ...

    async def hard_link(self, src: str, dst: str) -> None:
        """Make `dst` a new name of the file `src`. FileExistsError if `dst` exists."""
        ...


class CacheFile(Protocol):
    """An open data file of the VFS cache: a sparse local file read and written at
    any offset. Reads and writes are plain local-disk calls made on the event
    loop (a thread hop per 128 KiB kernel read would cost more than the read);
    `sync` and `close` may block longer and are awaited."""

    def pread(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes at `offset`; holes read as zeros."""
        ...

    def pwrite(self, offset: int, data: bytes) -> None: ...

    def truncate(self, size: int) -> None: ...

    def length(self) -> int:
        """The data file's size on disk."""
        ...

    async def sync(self) -> None:
        """Make the data durable (fsync)."""
        ...

    async def close(self) -> None: ...


class CacheStore(Protocol):
    """One volume's on-disk VFS cache: a data file and a metadata record per item,
    both keyed by the item's normalised path in the volume."""

    async def open(self, path: str) -> CacheFile:
        """Open the data file of `path`, creating it (empty) and its parent
        directories when missing."""
        ...

    async def save_record(self, path: str, record: bytes, *, durable: bool) -> None:
        """Replace the metadata record atomically (write aside, then rename), so a
        crash leaves either the old or the new record. `durable` also fsyncs it."""
        ...

    async def load_records(self) -> list[tuple[str, bytes]]:
        """Every (path, record) on disk; unreadable ones are skipped and logged."""
        ...

    async def remove(self, path: str) -> None:
        """Remove the data file and the record of `path` (missing ones are fine);
        an open `CacheFile` of it stays usable until closed."""
        ...

    async def set_aside(self, path: str) -> str | None:
        """Move the data file and the record of `path` out of the cache, to a place
        the operator can find them (and that nothing uploads from); returns that
        place, or None when there was nothing to keep."""
        ...

    async def rename(self, src: str, dst: str) -> None:
        """Move the item, or a whole directory of items, from `src` to `dst`,
        replacing an item at `dst`."""
        ...

    def present_bytes(self, path: str) -> int:
        """Bytes the data file of `path` really occupies (allocated blocks), 0 if
        it has none."""
        ...

    def data_length(self, path: str) -> int | None:
        """The data file's size, or None if there is none."""
        ...

    def sparse_supported(self) -> bool:
        """Whether the cache's file system keeps holes in files unallocated."""
        ...

    def free_bytes(self) -> int:
        """Bytes free for an unprivileged user on the cache's file system
        (--vfs-cache-min-free-space)."""
        ...


class StorageFactory(Protocol):
    def create(self, backend: BackendSpec) -> RemoteStorage:
        """Build (without connecting yet) a storage for `backend`.

        Raises `domain.errors.OptionError` for an unknown type or a bad option.
        """
        ...


class ConfigSource(Protocol):
    """The config file that `name:path` remotes are looked up in, as it is now."""

    def current(self) -> RcloneConfig:
        """Raises `domain.errors.OptionError` if the file is unreadable or malformed."""
        ...


class StateStore(Protocol):
    """Persists the volumes (rclone's docker-plugin.state shape)."""

    def load(self) -> list[dict[str, object]]:
        """The saved records; [] when there is no file. A corrupt file is moved
        aside and reported, and [] is returned."""
        ...

    def save(self, records: list[dict[str, object]]) -> None:
        """Replace the saved records atomically."""
        ...


class MountManager(Protocol):
    async def prepare(self, volume: Volume) -> None:
        """Make the mountpoint directory (Create)."""
        ...

    async def discard(self, volume: Volume) -> None:
        """Remove the mountpoint directory (Remove)."""
        ...

    async def mount(self, volume: Volume) -> None:
        """Bring the FUSE mount up; returns only once it is live.
        Raises `domain.errors.MountFailed` with the worker's own error."""
        ...

    async def unmount(self, volume: Volume) -> None:
        """Take the mount away; pending uploads finish in the worker afterwards."""
        ...

    async def adopt(self, volume: Volume) -> bool:
        """After a daemon restart: reattach to a live worker for `volume`.
        Returns False when there is none (stale mounts are cleared)."""
        ...

    async def recover(self, volume: Volume) -> bool:
        """At daemon start, for a volume that is not mounted: if its cache holds
        files a killed worker did not upload, start uploading them (in the
        background; a later mount waits for that or takes it over). Returns
        whether anything was started."""
        ...

    async def shutdown(self) -> None:
        """Unmount everything this manager runs (clean daemon exit)."""
        ...

    async def forget_all(self) -> None:
        """Every mounted volume forgets its directory cache (the daemon's SIGHUP)."""
        ...
