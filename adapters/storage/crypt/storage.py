"""`CryptStorage`: a `RemoteStorage` over another one, encrypting names and
contents in rclone's crypt format (cipher.py, content.py).

Paths: the volume's root and every path under it are plain; each segment is
encrypted on its own (names of directories only with directory_name_encryption),
so a path maps to one remote path and a directory listing decrypts name by name.
Remote entries whose names or sizes this cipher did not make (other keys, stray
files) are left out of listings, as rclone skips them.

Sizes are the plain sizes, worked out from the encrypted ones. With
no_data_encryption the contents pass through unchanged and only names are
encrypted.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from loguru import logger

from adapters.storage.crypt.cipher import NameCipher, NameError_, decrypted_size
from adapters.storage.crypt.content import ChunkBox, CryptReader, CryptWriter
from adapters.storage.relpath import components
from application.ports import RemoteReader, RemoteStorage, RemoteWriter
from domain.errors import RemoteUnavailable
from domain.paths import basename
from domain.remote_entry import RemoteEntry

_CHECK_SAMPLE = 20  # entries of the root looked at by check() to test the password


@dataclass(frozen=True)
class _Mapped:
    remote: str  # the path on the inner storage
    entry: RemoteEntry  # what is there, as the crypt volume shows it


class CryptStorage:
    def __init__(
        self,
        inner: RemoteStorage,
        names: NameCipher,
        data_key: bytes,
        *,
        root: str = "",
        encrypt_data: bool = True,
        label: str = "crypt",
    ) -> None:
        self._inner = inner
        self._names = names
        self._box = ChunkBox(data_key)
        self._root = components(root)
        self._encrypt_data = encrypt_data
        self.label = label

    # path mapping

    def _remote(self, path: str, *, is_file: bool) -> str:
        parts = self._root + components(path)
        return "/".join(self._names.encrypt_path(parts, is_file=is_file))

    def _forms_differ(self, path: str) -> bool:
        """Whether a file and a directory called `path` have different remote names
        (filename_encryption off, or plain directory names)."""
        return bool(components(path)) and self._remote(path, is_file=True) != self._remote(
            path, is_file=False
        )

    def _size(self, remote_size: int) -> int | None:
        return decrypted_size(remote_size) if self._encrypt_data else remote_size

    def _shown(self, entry: RemoteEntry) -> RemoteEntry | None:
        """A listed remote entry as the volume shows it; None when it is not one of
        this cipher's (another key, a stray file)."""
        try:
            name = self._names.decrypt_name(entry.name, is_file=not entry.is_dir)
        except NameError_:
            return None
        if entry.is_dir:
            return RemoteEntry(name, True, 0, entry.mtime)
        size = self._size(entry.size)
        return None if size is None else RemoteEntry(name, False, size, entry.mtime)

    async def _stat_inner(self, remote: str) -> RemoteEntry | None:
        try:
            return await self._inner.stat(remote)
        except FileNotFoundError:
            return None

    async def _find(self, path: str) -> _Mapped:
        name = basename(path)
        forms = [(self._remote(path, is_file=True), True)]
        if self._forms_differ(path):
            forms.append((self._remote(path, is_file=False), False))
        for remote, file_form in forms:
            entry = await self._stat_inner(remote)
            if entry is None or (len(forms) > 1 and entry.is_dir == file_form):
                continue  # nothing there, or the other kind (not what this name means)
            if entry.is_dir:
                return _Mapped(remote, RemoteEntry(name, True, 0, entry.mtime))
            size = self._size(entry.size)
            if size is None:
                raise OSError(errno.EIO, f"{self.label}: {path!r} is not an encrypted file")
            return _Mapped(remote, RemoteEntry(name, False, size, entry.mtime))
        raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)

    async def _refuse_directory_at(self, path: str) -> None:
        if self._forms_differ(path):
            entry = await self._stat_inner(self._remote(path, is_file=False))
            if entry is not None and entry.is_dir:
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)

    # the port

    async def check(self) -> None:
        await self._inner.check()
        # The remote's top first: a wrong password must not go on to make the
        # volume's root there under a name only that password reads.
        await self._check_keys("")
        made = ""
        for part in self._names.encrypt_path(self._root, is_file=False):
            made = f"{made}/{part}" if made else part
            entry = await self._stat_inner(made)
            if entry is None:
                await self._inner.mkdir(made)  # rclone makes the root on first write
            elif not entry.is_dir:
                raise RemoteUnavailable(f"{self.label}: the root is a file on the remote")
        if made:
            await self._check_keys(made)

    async def _check_keys(self, remote_root: str) -> None:
        """Refuse a password that does not open what is already in `remote_root`:
        names that do not decrypt, or a file whose first chunk fails authentication."""
        listed = (await self._inner.list_dir(remote_root))[:_CHECK_SAMPLE]
        shown = [self._shown(entry) for entry in listed]
        wrong = RemoteUnavailable(
            f"{self.label}: the files there do not decrypt with this password and password2 "
            "(or were written with other filename_encryption or filename_encoding settings)"
        )
        if listed and not any(shown):
            raise wrong
        if not self._encrypt_data:
            return
        for entry, plain in zip(listed, shown, strict=True):
            if plain is not None and not plain.is_dir and plain.size > 0:
                remote = f"{remote_root}/{entry.name}" if remote_root else entry.name
                reader = await self._open(remote, plain.size, plain.name)
                try:
                    await reader.read(0, 1)
                except OSError:
                    raise wrong from None
                finally:
                    await reader.close()
                return

    async def stat(self, path: str) -> RemoteEntry:
        return (await self._find(path)).entry

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        try:
            listed = await self._inner.list_dir(self._remote(path, is_file=False))
        except FileNotFoundError:
            if not (await self._find(path)).entry.is_dir:  # a file's name, in its own form
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path) from None
            raise
        entries: dict[str, RemoteEntry] = {}
        for entry in listed:
            shown = self._shown(entry)
            if shown is None:
                logger.debug(
                    "{}: skipping {!r}: not encrypted with this key", self.label, entry.name
                )
            else:
                entries[shown.name] = shown
        return sorted(entries.values(), key=lambda e: e.name)

    async def _open(self, remote: str, size: int, path: str) -> RemoteReader:
        inner = await self._inner.open_reader(remote)
        if not self._encrypt_data:
            return inner
        reader = CryptReader(inner, self._box, size, f"{self.label}: {path}")
        try:
            await reader.start()
        except BaseException:
            await inner.close()
            raise
        return reader

    async def open_reader(self, path: str) -> RemoteReader:
        found = await self._find(path)
        if found.entry.is_dir:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        return await self._open(found.remote, found.entry.size, path)

    async def open_writer(self, path: str) -> RemoteWriter:
        if not components(path):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        await self._refuse_directory_at(path)
        inner = await self._inner.open_writer(self._remote(path, is_file=True))
        return CryptWriter(inner, self._box) if self._encrypt_data else inner

    async def mkdir(self, path: str) -> None:
        if self._forms_differ(path) and await self._stat_inner(self._remote(path, is_file=True)):
            raise FileExistsError(errno.EEXIST, "file exists", path)
        await self._inner.mkdir(self._remote(path, is_file=False))

    async def rmdir(self, path: str) -> None:
        if not components(path):
            raise OSError(errno.EBUSY, "the volume root cannot be removed", path)
        if not (await self._find(path)).entry.is_dir:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        await self._inner.rmdir(self._remote(path, is_file=False))

    async def remove(self, path: str) -> None:
        found = await self._find(path)
        if found.entry.is_dir:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        await self._inner.remove(found.remote)

    async def rename(self, src: str, dst: str) -> None:
        found = await self._find(src)
        if found.entry.is_dir:
            if self._forms_differ(dst) and await self._stat_inner(self._remote(dst, is_file=True)):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", dst)
            await self._inner.rename(found.remote, self._remote(dst, is_file=False))
            return
        await self._refuse_directory_at(dst)
        await self._inner.rename(found.remote, self._remote(dst, is_file=True))

    async def set_mtime(self, path: str, mtime: float) -> None:
        await self._inner.set_mtime((await self._find(path)).remote, mtime)

    async def aclose(self) -> None:
        await self._inner.aclose()
