"""Backend option declarations, per backend type.

Names are rclone's backend option names (underscores: `key_file`); from Docker they
arrive as `-o <type>-<name>` (`sftp-key-file`), inline in a connection string
(`:sftp,key_file=...:`) or from a config file section. As in domain/options.py, an
option declared but not implemented is refused when given, unless its value is the
default (which changes nothing); to implement one, drop its `support=`.

Some rclone options steer features cloudvol does not have at all (hash commands run
on an SFTP server, bucket creation): they are declared `unused=<why>`, accepted, type
checked, and never reach the adapter. rclone writes several of them into its config
file by itself (sftp's `shell_type`), so refusing them would break existing configs.

Types not declared here are fsspec protocols (`memory`, `http`, ...): the domain
cannot know which are installed or what their parameters are, so their options pass
through as raw text and the storage adapter types them by the filesystem's own
signature (`BackendDecl.passthrough`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from domain.backend_decl import BackendDecl, BackendOptionDecl, BackendValue
from domain.backend_tables.azureblob import AZUREBLOB
from domain.backend_tables.local import LOCAL
from domain.backend_tables.s3 import S3
from domain.backend_tables.servers import FTP, HTTP, SMB, WEBDAV
from domain.backend_tables.sftp import SFTP
from domain.backend_tables.wrapping import ALIAS, CRYPT, UNION
from domain.errors import OptionError

__all__ = [
    "BackendDecl",
    "BackendOptionDecl",
    "BackendValue",
    "backend_types",
    "find_backend",
    "is_secret_option",
]

# A type name as fsspec spells protocols ("memory", "s3a", "arrow_hdfs").
_PROTOCOL_RE = re.compile(r"[a-z][a-z0-9_]*")

_BACKENDS: Mapping[str, BackendDecl] = {
    decl.type: decl
    for decl in (LOCAL, S3, SFTP, CRYPT, ALIAS, UNION, WEBDAV, FTP, SMB, AZUREBLOB, HTTP)
}


# Words that mark an undeclared option (an fsspec protocol's parameter, an unknown
# inline key) as secret: the registry cannot know those, so they are judged by name.
_SECRET_WORDS = ("pass", "secret", "token", "key", "credential", "sas")


def _declared_secrecy() -> dict[str, bool]:
    """Whether each declared option holds a secret, by bare name (`pass`) and by
    `<type>_<name>` (`sftp_pass`); a bare name secret in one backend is secret."""
    secrecy: dict[str, bool] = {}
    for backend in _BACKENDS.values():
        for decl in backend.options:
            secrecy[decl.name] = secrecy.get(decl.name, False) or decl.secret
            secrecy[f"{backend.type}_{decl.name}"] = decl.secret
    return secrecy


_DECLARED_SECRECY: Mapping[str, bool] = _declared_secrecy()


def is_secret_option(key: str) -> bool:
    """Whether option `key` holds a value never to show (`pass`, `sftp-pass`,
    `S3_SECRET_ACCESS_KEY`, an fsspec `password`...). Declared options answer by
    their `secret` flag; other names are judged by the words in them."""
    normal = key.strip().lower().replace("-", "_")
    declared = _DECLARED_SECRECY.get(normal)
    if declared is not None:
        return declared
    return any(word in normal for word in _SECRET_WORDS)


def backend_types() -> list[str]:
    """The declared backend types, sorted. Other types are fsspec protocols."""
    return sorted(_BACKENDS)


def find_backend(backend_type: str) -> BackendDecl:
    """The declaration of `backend_type`; any other well-formed name is taken as an
    fsspec protocol whose options pass through (the storage factory refuses it if
    no such protocol is installed)."""
    decl = _BACKENDS.get(backend_type)
    if decl is not None:
        return decl
    if _PROTOCOL_RE.fullmatch(backend_type):
        return BackendDecl(backend_type, (), passthrough=True)
    raise OptionError(
        f'unknown backend type "{backend_type}" (declared types: {", ".join(backend_types())}; '
        "other types are fsspec protocol names: lowercase letters, digits and _)"
    )
