"""rclone's webdav, ftp, smb, azureblob and http remotes, with rclone's option
names, over well-kept fsspec filesystems (webdav4, fsspec's ftp, smbprotocol's
smbclient through fsspec's smb, adlfs, fsspec's http) served by `FsspecStorage`.

Each builder maps the rclone options onto the filesystem's parameters; the
filesystem itself is made on first use, inside the worker's event loop.
"""

from __future__ import annotations

import errno
import getpass
import posixpath
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree

import anyio

from adapters.storage.backend_options import CheckedOptions, check_backend_options
from adapters.storage.fsspec_files import in_thread
from adapters.storage.fsspec_storage import FsspecStorage
from adapters.storage.obscure import reveal
from adapters.storage.relpath import components
from adapters.storage.storage_common import Found, to_timestamp, valid_name
from domain.errors import OptionError
from domain.paths import basename, parent_of
from domain.remote_entry import RemoteEntry
from domain.volume import BackendSpec

_HEADS_AT_ONCE = 16  # HEAD requests of one http listing in flight


def _http_date(text: str) -> float | None:
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _password(checked: CheckedOptions, name: str = "pass") -> str:
    obscured = checked.text(name)
    return reveal(obscured, f"{checked.backend_type} option {name!r}") if obscured else ""


def _user(checked: CheckedOptions) -> str:
    """rclone's default user for ftp and smb: the user running it."""
    return checked.text("user") or getpass.getuser()


def _root(spec: BackendSpec) -> str:
    return spec.root.strip("/")


# --- webdav ---------------------------------------------------------------------


_PROPFIND_LIST = (
    b'<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop>'
    b"<d:resourcetype/><d:getcontentlength/><d:getlastmodified/></d:prop></d:propfind>"
)
_DAV = "{DAV:}"
_BUSY_STATUSES = frozenset({423, 429, 500, 502, 503, 504, 509})


class WebdavStorage(FsspecStorage):
    """A listing is one PROPFIND (depth 1) asking for the three properties a
    directory entry needs, parsed with ElementTree: webdav4's general parser
    costs several times the server's answer on large directories. A rename is
    one MOVE that replaces the target (webdav4's own `mv` copies files, then
    deletes them, and refuses to replace)."""

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        from webdav4.client import ResourceNotFound

        client = self.filesystem().client
        url = client.join_url(self._full(path), add_trailing_slash=True)

        def propfind() -> bytes:
            response = client.http.request(
                "PROPFIND",
                url,
                content=_PROPFIND_LIST,
                headers={"Depth": "1", "Content-Type": "application/xml"},
            )
            if response.status_code == 404:
                raise ResourceNotFound(path)
            response.raise_for_status()
            return bytes(response.content)

        try:
            body = await self._retrying(lambda: in_thread(propfind))
        except ResourceNotFound:
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path) from None
        except Exception as exc:
            raise self._error(exc, path) from None
        return self._parse_listing(path, unquote(url.path).rstrip("/"), body)

    def _parse_listing(self, path: str, own: str, body: bytes) -> list[RemoteEntry]:
        entries: list[RemoteEntry] = []
        times: dict[str, float] = {}
        for response in ElementTree.fromstring(body).iter(f"{_DAV}response"):
            href = unquote(urlsplit(response.findtext(f"{_DAV}href", "")).path).rstrip("/")
            prop = next(
                (
                    stat.find(f"{_DAV}prop")
                    for stat in response.iter(f"{_DAV}propstat")
                    if " 200 " in (stat.findtext(f"{_DAV}status") or "")
                ),
                None,
            )
            if prop is None:
                continue
            is_dir = prop.find(f"{_DAV}resourcetype/{_DAV}collection") is not None
            if href == own:
                if not is_dir:
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
                continue
            name = href.rsplit("/", 1)[-1]
            if not valid_name(name):
                continue
            stamp_text = prop.findtext(f"{_DAV}getlastmodified") or ""
            if stamp_text not in times:
                times[stamp_text] = _http_date(stamp_text) or self._created
            size_text = prop.findtext(f"{_DAV}getcontentlength") or "0"
            size = 0 if is_dir or not size_text.isdigit() else int(size_text)
            entries.append(RemoteEntry(name, is_dir, size, times[stamp_text]))
        return sorted(entries, key=lambda e: e.name)

    async def _move_file(self, src: str, dst: str, source: RemoteEntry) -> None:
        client = self.filesystem().client
        full_src, full_dst = self._full(src), self._full(dst)
        await self._guard(
            src,
            self._retrying(
                lambda: in_thread(lambda: client.move(full_src, full_dst, overwrite=True))
            ),
        )

    def _transient(self, exc: BaseException) -> bool:
        # rclone's webdav backend retries the same answers.
        from webdav4.client import BadGatewayError, ResourceLocked

        if isinstance(exc, ResourceLocked | BadGatewayError):
            return True
        # webdav4's HTTPError has the status; httpx's HTTPStatusError, its response.
        response = getattr(exc, "response", None)
        status = getattr(exc, "status_code", getattr(response, "status_code", None))
        return status in _BUSY_STATUSES


def build_webdav_storage(spec: BackendSpec) -> WebdavStorage:
    checked = check_backend_options("webdav", spec.options)
    url = checked.text("url")
    if urlsplit(url).scheme not in ("http", "https"):
        raise OptionError(f"webdav option 'url' must be an http:// or https:// URL, got {url!r}")
    user, password = checked.text("user"), _password(checked)
    token = checked.text("bearer_token")

    def make() -> Any:
        from webdav4.fsspec import WebdavFileSystem

        extra: dict[str, Any] = {}
        if token:
            extra["headers"] = {"Authorization": f"Bearer {token}"}
        auth = (user, password) if user or password else None
        return WebdavFileSystem(url, auth=auth, **extra)

    return WebdavStorage(
        make,
        _root(spec),
        label=f"webdav {url} {spec.root or '/'}",
        secrets=[s for s in (password, token) if s],
    )


# --- ftp ------------------------------------------------------------------------


class _Serialised:
    """A filesystem whose calls take turns: fsspec's FTP filesystem drives one
    control connection, which two threads must never talk over at once."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs
        self.lock = threading.RLock()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.fs, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                return value(*args, **kwargs)

        return call


def _ftp_time(value: object) -> float | None:
    """MLSD's `modify` fact (YYYYMMDDHHMMSS[.sss], UTC)."""
    if not isinstance(value, str) or len(value) < 14 or not value[:14].isdigit():
        return None
    moment = datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return moment.timestamp()


class FtpStorage(FsspecStorage):
    """FTP keeps modification times: read from MLSD, set with MFMT. A relative
    root is taken from the login directory, as rclone does."""

    def filesystem(self) -> Any:
        fresh = self._fs is None
        serialised = super().filesystem()
        if fresh and not self.root.startswith("/"):
            with serialised.lock:
                home = serialised.fs.ftp.pwd()
            self.root = posixpath.join(home, self.root).rstrip("/") or "/"
        return serialised

    def _mtime(self, info: Mapping[str, Any]) -> float | None:
        return _ftp_time(info.get("modify")) or to_timestamp(info.get("mtime"))

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        entries = await super().list_dir(path)
        # Listing a file falls back to LIST, which shows the file as its own child.
        if len(entries) == 1 and not entries[0].is_dir and entries[0].name == basename(path):
            if not (await self._find(path)).entry.is_dir:
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        return entries

    async def set_mtime(self, path: str, mtime: float) -> None:
        found = await self._find(path)
        if found.entry.is_dir:
            return  # directories keep their times in the VFS
        serialised = self.filesystem()
        stamp = datetime.fromtimestamp(mtime, tz=UTC).strftime("%Y%m%d%H%M%S")
        full = self._full(path)

        def send() -> None:
            with serialised.lock:
                serialised.fs.ftp.sendcmd(f"MFMT {stamp} {full}")

        await self._guard(path, in_thread(send))


def build_ftp_storage(spec: BackendSpec) -> FtpStorage:
    checked = check_backend_options("ftp", spec.options)
    host, port = checked.text("host"), checked.integer("port") or 21
    user, password = _user(checked), _password(checked)
    explicit_tls = checked.flag("explicit_tls")

    def make() -> Any:
        from fsspec.implementations.ftp import FTPFileSystem

        fs = FTPFileSystem(
            host,
            port=port,
            username=user,
            password=password,
            tls=explicit_tls,
            timeout=30,
            skip_instance_cache=True,
            use_listings_cache=False,  # the VFS keeps its own directory cache
        )
        return _Serialised(fs)

    return FtpStorage(
        make,
        spec.root.rstrip("/") if spec.root.strip("/") else "",
        label=f"ftp {user}@{host}:{port} {spec.root or '/'}",
        secrets=[password] if password else [],
    )


# --- smb ------------------------------------------------------------------------


class SmbStorage(FsspecStorage):
    """smbclient's errors carry an errno but are not Python's OSError subclasses
    (FileNotFoundError...): rebuilt as those, so the port's contract holds."""

    def _error(self, exc: BaseException, path: str) -> BaseException:
        if isinstance(exc, OSError) and type(exc).__module__.startswith("smbprotocol"):
            exc = OSError(exc.errno, exc.strerror or str(exc))  # the errno picks the class
        return super()._error(exc, path)

    def _unc(self, path: str) -> str:
        from fsspec.implementations.smb import _as_unc_path

        return str(_as_unc_path(self.filesystem().host, self._full(path)))

    async def _move_file(self, src: str, dst: str, source: RemoteEntry) -> None:
        import smbclient  # replace, not rename: the target file, if any, goes

        port = self.filesystem().port
        unc_src, unc_dst = self._unc(src), self._unc(dst)
        await self._guard(src, in_thread(lambda: smbclient.replace(unc_src, unc_dst, port=port)))

    async def set_mtime(self, path: str, mtime: float) -> None:
        found = await self._find(path)
        if found.entry.is_dir:
            return  # directories keep their times in the VFS
        import smbclient

        port, unc = self.filesystem().port, self._unc(path)
        await self._guard(
            path, in_thread(lambda: smbclient.utime(unc, times=(mtime, mtime), port=port))
        )


def build_smb_storage(spec: BackendSpec) -> SmbStorage:
    checked = check_backend_options("smb", spec.options)
    host, port = checked.text("host"), checked.integer("port") or 445
    user, password, domain = _user(checked), _password(checked), checked.text("domain")
    if not _root(spec):
        raise OptionError("the smb backend needs a share: -o path=share or -o path=share/dir")

    def make() -> Any:
        from fsspec.implementations.smb import SMBFileSystem

        return SMBFileSystem(
            host,
            port=port,
            username=f"{domain}\\{user}" if domain else user,
            password=password,
            timeout=30,
            skip_instance_cache=True,
        )

    return SmbStorage(
        make,
        "/" + _root(spec),
        label=f"smb {user}@{host}:{port} {spec.root}",
        secrets=[password] if password else [],
    )


# --- azureblob ------------------------------------------------------------------


class AzureBlobStorage(FsspecStorage):
    """Blobs are renamed by copy and delete (the service has no rename), one blob
    at a time under a directory. Modification times are kept as rclone keeps
    them, in the blob's `mtime` metadata (RFC 3339); directories exist only as
    the prefixes of their blobs, as with rclone's azureblob."""

    async def _run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name != "mv":
            return await super()._run(name, *args, **kwargs)
        fs = self.filesystem()
        src, dst = str(args[0]), str(args[1])
        if not kwargs.get("recursive"):
            await fs._cp_file(src, dst)
            await fs._rm_file(src)
            return None
        for blob in await fs._find(src):
            await fs._cp_file(blob, dst + str(blob)[len(src) :])
            await fs._rm_file(blob)
        return None

    async def _move_dir(self, src: str, dst: str) -> None:
        # A directory made by mkdir is remembered in memory, yet blobs written
        # into it since are real: move those first, then the remembered ones.
        await self._guard(src, self._run("mv", self._full(src), self._full(dst), recursive=True))
        await super()._move_dir(src, dst)

    def _mtime(self, info: Mapping[str, Any]) -> float | None:
        metadata = info.get("metadata") or {}
        stamp = to_timestamp(metadata.get("mtime")) if isinstance(metadata, Mapping) else None
        return stamp if stamp is not None else super()._mtime(info)

    async def set_mtime(self, path: str, mtime: float) -> None:
        found = await self._find(path)
        if found.entry.is_dir:
            return  # directories keep their times in the VFS
        stamp = datetime.fromtimestamp(mtime, tz=UTC).isoformat().replace("+00:00", "Z")
        fs = self.filesystem()
        await self._guard(path, fs._setxattrs(self._full(path), mtime=stamp, is_directory="false"))


def build_azureblob_storage(spec: BackendSpec) -> AzureBlobStorage:
    checked = check_backend_options("azureblob", spec.options)
    account, key = checked.text("account"), checked.text("key")
    sas_url, endpoint = checked.text("sas_url"), checked.text("endpoint")
    root = _root(spec)
    kwargs: dict[str, Any] = {}
    if sas_url:
        parts = urlsplit(sas_url)
        container = parts.path.strip("/")
        if not parts.query:
            raise OptionError("azureblob option 'sas_url' has no SAS token (the part after ?)")
        account = account or (parts.hostname or "").split(".")[0]
        service = f"{parts.scheme}://{parts.netloc}"
        kwargs["connection_string"] = f"BlobEndpoint={service};SharedAccessSignature={parts.query}"
        root = "/".join(p for p in (container, root) if p)
    elif not account:
        raise OptionError("azureblob needs 'account' (with 'key'), or 'sas_url'")
    elif endpoint:
        scheme = urlsplit(endpoint).scheme or "https"
        kwargs["connection_string"] = (
            f"DefaultEndpointsProtocol={scheme};AccountName={account};"
            + (f"AccountKey={key};" if key else "")
            + f"BlobEndpoint={endpoint};"
        )
    else:
        kwargs.update(account_name=account, account_key=key or None)
    if not root:
        raise OptionError(
            "the azureblob backend needs a container: -o path=container or -o path=container/dir"
        )

    def make() -> Any:
        from adlfs import AzureBlobFileSystem

        return AzureBlobFileSystem(
            **kwargs, asynchronous=True, skip_instance_cache=True, use_listings_cache=False
        )

    return AzureBlobStorage(
        make,
        root,
        label=f"azureblob {account} {root}",
        secrets=[s for s in (key, sas_url, urlsplit(sas_url).query) if s],
    )


# --- http -----------------------------------------------------------------------


class HttpStorage(FsspecStorage):
    """A directory is an index page, which gives names only: as rclone's http
    backend does, each file listed is asked for (HEAD) its size and time, a few
    at a time. A single path is looked up in its parent's page, then asked for."""

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        entries = await super().list_dir(path)
        limiter = anyio.CapacityLimiter(_HEADS_AT_ONCE)

        async def head(index: int, entry: RemoteEntry) -> None:
            child = f"{path}/{entry.name}" if path else entry.name
            async with limiter:
                info = await self._guard(child, self._run("info", self._full(child)))
            entries[index] = self._entry(entry.name, info)

        async with anyio.create_task_group() as group:
            for index, entry in enumerate(entries):
                if not entry.is_dir:
                    group.start_soon(head, index, entry)
        return entries

    async def _find(self, path: str) -> Found:
        if not components(path):
            return await super()._find(path)
        for entry in await super().list_dir(parent_of(path)):
            if entry.name == basename(path):
                if entry.is_dir:
                    return Found(entry)
                info = await self._guard(path, self._run("info", self._full(path)))
                return Found(self._entry(entry.name, info), isinstance(info.get("size"), int))
        raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)


def build_http_storage(spec: BackendSpec) -> HttpStorage:
    checked = check_backend_options("http", spec.options)
    url = checked.text("url")
    if urlsplit(url).scheme not in ("http", "https"):
        raise OptionError(f"http option 'url' must be an http:// or https:// URL, got {url!r}")
    base = url.rstrip("/")
    root = f"{base}/{_root(spec)}" if _root(spec) else base

    def make() -> Any:
        from fsspec.implementations.http import HTTPFileSystem

        return HTTPFileSystem(asynchronous=True, skip_instance_cache=True)

    return HttpStorage(make, root, label=f"http {root}", read_only=True, kind_from_listing=True)
