"""Remote strings inside crypt, alias and union options: config remotes in them
are inlined when the volume's options are parsed, so the worker needs no file."""

from __future__ import annotations

import pytest

from domain.errors import OptionError
from domain.rclone_config import RcloneConfig, parse_rclone_config
from domain.remote_spec import parse_remote
from domain.volume_options import parse_volume_options
from domain.wrapped_remotes import connection_string, split_upstreams, upstream_suffix

CONFIG = """
[files]
type = sftp
host = files.example.org
user = me
key_file = /root/.ssh/id "quoted", with: colons

[secret]
type = crypt
remote = files:backup
password = OBSCURED
filename_encryption = obfuscate

[both]
type = union
upstreams = /srv/a:ro secret:sub "/srv/with space:nc"

[loop]
type = alias
remote = loop:x
"""


def config() -> RcloneConfig:
    return parse_rclone_config(CONFIG, "/etc/rclone.conf")


def test_connection_strings_read_back_as_given() -> None:
    options = {"key_file": '/root/"q", x: y', "host": "h"}
    parsed = parse_remote(connection_string("sftp", options, "/srv"))
    assert (parsed.type, parsed.path, parsed.options) == ("sftp", "/srv", options)


def test_a_crypt_remote_over_a_config_remote_is_inlined() -> None:
    backend = parse_volume_options({"remote": "secret:photos"}, {}, config()).spec.backend
    assert (backend.type, backend.root) == ("crypt", "photos")
    inner = parse_remote(str(backend.options["remote"]))
    assert (inner.type, inner.path) == ("sftp", "backup")
    assert inner.options == {
        "host": "files.example.org",
        "user": "me",
        "key_file": '/root/.ssh/id "quoted", with: colons',
    }
    assert backend.options["filename_encryption"] == "obfuscate"


def test_union_upstreams_keep_their_suffixes_and_spaces() -> None:
    backend = parse_volume_options({"remote": "both:"}, {}, config()).spec.backend
    items = split_upstreams(str(backend.options["upstreams"]))
    assert [upstream_suffix(item)[1] for item in items] == ["ro", "", "nc"]
    assert upstream_suffix(items[0])[0] == "/srv/a"
    assert upstream_suffix(items[2])[0] == "/srv/with space"
    crypt = parse_remote(upstream_suffix(items[1])[0])
    assert crypt.type == "crypt" and crypt.path == "sub"
    assert parse_remote(crypt.options["remote"]).type == "sftp"  # wrappers of wrappers


def test_a_remote_wrapping_itself_is_refused() -> None:
    with pytest.raises(OptionError, match="wrap each other in a loop"):
        parse_volume_options({"remote": "loop:"}, {}, config())


def test_an_unknown_wrapped_remote_names_the_config_file() -> None:
    with pytest.raises(OptionError, match='remote "nowhere": not found in config file'):
        parse_volume_options({"type": "alias", "alias-remote": "nowhere:x"}, {}, config())


def test_unsupported_types_and_options_are_refused_by_name() -> None:
    with pytest.raises(OptionError, match="crypt-pass-bad-blocks: not supported yet"):
        parse_volume_options(
            {"type": "crypt", "crypt-remote": "/x", "crypt-password": "p",
             "crypt-pass-bad-blocks": "true"}
        )  # fmt: skip
    with pytest.raises(OptionError, match="union-create-policy: unknown value"):
        parse_volume_options(
            {"type": "union", "union-upstreams": "/a /b", "union-create-policy": "lus"}
        )
