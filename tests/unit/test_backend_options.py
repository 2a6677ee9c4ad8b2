"""Backend options as the adapters take them: checked against the one registry
(domain/backends.py)."""

from __future__ import annotations

import dataclasses

import pytest

from adapters.storage.backend_options import check_backend_options
from adapters.storage.fsspec_protocols import fsspec_options
from adapters.storage.s3_options import S3Options
from adapters.storage.sftp_options import SftpOptions
from domain.backends import find_backend
from domain.errors import OptionError


def acted_on(backend_type: str) -> set[str]:
    return {d.name for d in find_backend(backend_type).options if d.is_supported and not d.unused}


def test_defaults_come_from_the_declarations() -> None:
    checked = check_backend_options("sftp", {"host": "h"})
    assert set(checked.values) == acted_on("sftp")
    assert checked.values["port"] == 22 and checked.values["idle_timeout"] == 60.0
    assert checked.values["chunk_size"] is None  # declared without a default
    assert checked.secrets == ()


def test_values_are_checked_against_their_declared_type() -> None:
    with pytest.raises(OptionError, match="sftp option 'port' must be of type int"):
        check_backend_options("sftp", {"host": "h", "port": "22"})
    with pytest.raises(OptionError, match="'port' must be of type int"):
        check_backend_options("sftp", {"host": "h", "port": True})  # bool is no number
    with pytest.raises(OptionError, match="'set_modtime' must be of type bool"):
        check_backend_options("sftp", {"host": "h", "set_modtime": 1})
    whole = check_backend_options("sftp", {"host": "h", "idle_timeout": 5})
    assert whole.values["idle_timeout"] == 5.0 and isinstance(whole.values["idle_timeout"], float)
    with pytest.raises(OptionError, match="s3 option 'endpoint' must be of type str"):
        check_backend_options("s3", {"endpoint": 5})


def test_unknown_unused_and_missing_options_are_refused() -> None:
    with pytest.raises(OptionError, match=r"unsupported sftp option 'bogus' \(supported: "):
        check_backend_options("sftp", {"host": "h", "bogus": 1})
    with pytest.raises(OptionError, match="unsupported sftp option 'shell_type'"):
        check_backend_options("sftp", {"host": "h", "shell_type": "unix"})  # declared unused
    for missing in ({}, {"host": ""}):
        with pytest.raises(OptionError, match="sftp option 'host' is required"):
            check_backend_options("sftp", missing)


def test_secret_values_are_collected_by_declaration() -> None:
    checked = check_backend_options(
        "s3", {"access_key_id": "AK", "secret_access_key": "SK", "session_token": "TK"}
    )
    assert sorted(checked.secrets) == ["SK", "TK"]
    s3 = S3Options.parse({"access_key_id": "AK", "secret_access_key": "SK"})
    assert s3.secrets == ("SK",) and "SK" not in repr(s3)


def test_the_typed_views_have_exactly_the_declared_options() -> None:
    s3_fields = {f.name for f in dataclasses.fields(S3Options)} - {"secrets"}
    assert s3_fields == acted_on("s3")
    # SftpOptions names rclone's `pass` `password` (a Python keyword otherwise).
    sftp_fields = {f.name for f in dataclasses.fields(SftpOptions)}
    assert sftp_fields == acted_on("sftp") - {"pass"} | {"password"}


def test_fsspec_options_hide_invalid_secret_values() -> None:
    class Fs:
        def __init__(self, password: int = 0, port: int = 0) -> None: ...

    with pytest.raises(OptionError, match="invalid int value \\(not shown\\)") as info:
        fsspec_options("demo", Fs, {"password": "hunter2"})
    assert "hunter2" not in str(info.value)
    with pytest.raises(OptionError, match=r'demo-port: .*"x"'):
        fsspec_options("demo", Fs, {"port": "x"})
