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

from typing import Protocol

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


class StorageFactory(Protocol):
    def create(self, backend: BackendSpec) -> RemoteStorage:
        """Build (without connecting yet) a storage for `backend`.

        Raises `domain.errors.OptionError` for an unknown type or a bad option.
        """
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

    async def shutdown(self) -> None:
        """Unmount everything this manager runs (clean daemon exit)."""
        ...
