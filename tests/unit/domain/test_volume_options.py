import pytest

from domain.backends import backend_types, find_backend
from domain.errors import OptionError
from domain.rclone_config import missing_config, parse_rclone_config
from domain.volume import CacheMode, MountOptions, VfsOptions
from domain.volume_options import parse_volume_options


def test_type_with_prefixed_backend_options() -> None:
    parsed = parse_volume_options(
        {
            "type": "sftp",
            "sftp-host": "H",
            "sftp-user": "U",
            "sftp-key-file": "K",
            "path": "/srv",
            "vfs-cache-mode": "off",
        },
        {},
    )
    backend = parsed.spec.backend
    assert backend.type == "sftp"
    assert backend.root == "/srv"
    assert backend.options["host"] == "H"
    assert backend.options["user"] == "U"
    assert backend.options["key_file"] == "K"
    # supported options not given carry their typed defaults
    assert backend.options["port"] == 22
    assert "chunk_size" not in backend.options  # the server's limit, unless given
    assert backend.options["idle_timeout"] == 60.0
    assert backend.options["set_modtime"] is True
    assert "key_use_agent" not in backend.options  # not supported: no default either
    assert parsed.spec.vfs.cache_mode is CacheMode.OFF
    assert (parsed.fs, parsed.type, parsed.path) == ("", "sftp", "/srv")


def test_connection_string_remote_with_mount_option() -> None:
    parsed = parse_volume_options({"remote": ":sftp,host=H:/srv", "allow-other": "true"}, {})
    assert parsed.spec.backend.type == "sftp"
    assert parsed.spec.backend.root == "/srv"
    assert parsed.spec.backend.options["host"] == "H"
    assert parsed.spec.mount.allow_other is True
    assert (parsed.fs, parsed.type, parsed.path) == (":sftp,host=H:/srv", "", "")


def test_bare_local_dir() -> None:
    parsed = parse_volume_options({"remote": "/some/local/dir"}, {})
    assert parsed.spec.backend.type == "local"
    assert parsed.spec.backend.root == "/some/local/dir"
    assert parsed.spec.backend.options == {}
    assert parsed.spec.mount == MountOptions()
    assert parsed.spec.vfs == VfsOptions()
    assert parsed.fs == "/some/local/dir"


def test_fs_is_a_synonym_of_remote() -> None:
    via_fs = parse_volume_options({"fs": ":sftp,host=H:/srv"}, {})
    via_remote = parse_volume_options({"remote": ":sftp,host=H:/srv"}, {})
    assert via_fs.spec == via_remote.spec
    assert via_fs.fs == ":sftp,host=H:/srv"


def test_path_overrides_the_remote_path() -> None:
    parsed = parse_volume_options({"remote": ":sftp,host=H:/a", "path": "/b"}, {})
    assert parsed.spec.backend.root == "/b"
    assert parsed.path == "/b"


def test_dash_o_backend_option_wins_over_inline() -> None:
    parsed = parse_volume_options(
        {"remote": ":sftp,host=H,port=2222,user=a:/", "sftp_user": "b"}, {}
    )
    options = parsed.spec.backend.options
    assert (options["host"], options["port"], options["user"]) == ("H", 2222, "b")


def test_keys_are_normalised() -> None:
    parsed = parse_volume_options(
        {"remote": "/d", "--Allow_Other": "true", "VFS_CACHE_MODE": "Off", "Dir-Perms": "0750"},
        {},
    )
    assert parsed.spec.mount.allow_other is True
    assert parsed.spec.vfs.dir_perms == 0o750


def test_every_cache_mode_is_accepted() -> None:
    parsed = parse_volume_options({"remote": "/d", "vfs-cache-mode": "FULL"}, {})
    assert parsed.spec.vfs.cache_mode is CacheMode.FULL


def test_unsupported_option_refused_when_given() -> None:
    with pytest.raises(OptionError) as info:
        parse_volume_options({"remote": "/d", "allow-idmap": "true"}, {})
    assert str(info.value).startswith("allow-idmap: not supported: ")


@pytest.mark.parametrize("key", ["bogus", "sftp-host", "local-nope", "s3-endpoint"])
def test_unknown_key_refused_with_rclone_message(key: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_volume_options({"remote": "/d", key: "1"}, {})
    assert str(info.value) == f'unsupported backend option "{key}"'


def test_unknown_key_message_uses_key_as_given() -> None:
    with pytest.raises(OptionError) as info:
        parse_volume_options({"type": "sftp", "sftp-host": "H", "SFTP_Bogus": "1"}, {})
    assert str(info.value) == 'unsupported backend option "SFTP_Bogus"'


def test_unsupported_inline_backend_option() -> None:
    with pytest.raises(OptionError, match='unsupported backend option "bogus" in remote'):
        parse_volume_options({"remote": ":sftp,host=H,bogus=1:"}, {})


def test_not_yet_supported_backend_option() -> None:
    with pytest.raises(OptionError) as info:
        parse_volume_options({"type": "sftp", "sftp-host": "H", "sftp-key-use-agent": "true"}, {})
    assert str(info.value) == "sftp-key-use-agent: not supported yet"
    with pytest.raises(OptionError, match=r"^key_use_agent: not supported yet"):
        parse_volume_options({"remote": ":sftp,host=H,key_use_agent:"}, {})
    # Asking for the default changes nothing: accepted.
    parsed = parse_volume_options({"type": "sftp", "sftp-host": "H", "sftp-key-use-agent": "0"}, {})
    assert "key_use_agent" not in parsed.spec.backend.options


def test_backend_values_are_typed_and_checked() -> None:
    with pytest.raises(OptionError, match=r"^sftp-port: invalid integer"):
        parse_volume_options({"type": "sftp", "sftp-host": "H", "sftp-port": "ssh"}, {})
    parsed = parse_volume_options(
        {"type": "sftp", "sftp-host": "H", "sftp-chunk-size": "64Ki", "sftp-idle-timeout": "off"},
        {},
    )
    assert parsed.spec.backend.options["chunk_size"] == 64 * 1024
    assert parsed.spec.backend.options["idle_timeout"] == float("inf")


def test_both_remote_and_type_refused() -> None:
    with pytest.raises(OptionError, match="not both"):
        parse_volume_options({"remote": "/d", "type": "local"}, {})


def test_both_remote_and_fs_refused() -> None:
    with pytest.raises(OptionError, match='only one of "remote" and "fs"'):
        parse_volume_options({"remote": "/d", "fs": "/e"}, {})


def test_neither_remote_nor_type_refused() -> None:
    with pytest.raises(OptionError, match='give "remote"'):
        parse_volume_options({"allow-other": "true"}, {})


def test_same_key_twice_after_normalising_refused() -> None:
    with pytest.raises(OptionError, match='"allow-other" given twice'):
        parse_volume_options({"remote": "/d", "allow_other": "true", "allow-other": "false"}, {})


def test_required_backend_option_missing() -> None:
    with pytest.raises(OptionError) as info:
        parse_volume_options({"type": "sftp", "path": "/srv"}, {})
    assert str(info.value) == "sftp-host is required for type sftp"


def test_undeclared_types_are_fsspec_protocols_whose_options_pass_through() -> None:
    assert backend_types() == [
        "alias", "azureblob", "crypt", "ftp", "http", "local", "s3", "sftp", "smb", "union",
        "webdav",
    ]  # fmt: skip
    parsed = parse_volume_options(
        {"type": "memory", "memory-global-store": "false", "memory_Other_Thing": "1"}, {}
    )
    backend = parsed.spec.backend
    assert (backend.type, backend.root) == ("memory", "")
    # Raw text: the storage adapter types them by the filesystem's signature.
    assert backend.options == {"global_store": "false", "other_thing": "1"}
    inline = parse_volume_options({"remote": ":https,simple_links=false:https://h/d"}, {})
    assert inline.spec.backend.options == {"simple_links": "false"}
    assert inline.spec.backend.root == "https://h/d"
    # Whether such a protocol is installed is the storage factory's to say.
    assert parse_volume_options({"type": "nfs"}, {}).spec.backend.type == "nfs"


def test_malformed_backend_type_refused() -> None:
    with pytest.raises(OptionError) as info:
        parse_volume_options({"type": "NF S"}, {})
    assert str(info.value).startswith(
        'unknown backend type "NF S" (declared types: alias, azureblob, crypt, ftp, http, '
        "local, s3, sftp, smb, union, webdav; other types are fsspec protocol names"
    )


def test_config_remote_needs_a_config_file() -> None:
    with pytest.raises(OptionError) as info:
        parse_volume_options({"remote": "myremote:path"}, {})
    assert str(info.value) == 'remote "myremote:path": no config file to look "myremote" up in'
    with pytest.raises(OptionError) as info:
        parse_volume_options({"remote": "myremote:path"}, {}, missing_config("/etc/c.conf"))
    assert str(info.value).startswith(
        'remote "myremote:path": config file /etc/c.conf not found (create it with a '
        "[myremote] section"
    )


CONF = parse_rclone_config(
    """
[files]
type = sftp
host = example.org
user = me
port = 2222
pass = XG2NGkIb8hZ4rkCCeyTEjXbw0X3R5eWb
shell_type = unix
md5sum_command = md5sum
use_insecure_cipher = false
unknown_to_rclone = whatever
key_file =

[objects]
type = s3
provider = minio
access_key_id = AK
secret_access_key = SK
endpoint = http://minio:9000
location_constraint = EU
acl = private

[here]
type = local

[mem]
type = memory
global_store = false

[notype]
host = x

[old]
type = sftp
host = h
ciphers = aes128-ctr

[team]
type = sftp
host = team.example.org
[team.bob]
user = bob
""",
    "/c.conf",
)


def test_sftp_remote_from_a_config_file() -> None:
    parsed = parse_volume_options({"remote": "files:/srv"}, {}, CONF)
    backend = parsed.spec.backend
    assert (backend.type, backend.root) == ("sftp", "/srv")
    o = backend.options
    assert (o["host"], o["user"], o["port"]) == ("example.org", "me", 2222)
    assert o["pass"] == "XG2NGkIb8hZ4rkCCeyTEjXbw0X3R5eWb"  # revealed by the adapter
    assert o["key_file"] == ""  # an empty value is "not set": the default
    # rclone's own bookkeeping and keys no backend knows never reach the adapter.
    assert not {"shell_type", "md5sum_command", "unknown_to_rclone"} & set(o)
    assert "use_insecure_cipher" not in o  # not supported yet, but given as its default
    assert (parsed.fs, parsed.type, parsed.path) == ("files:/srv", "", "")


def test_config_values_are_overridden_inline_then_by_dash_o() -> None:
    parsed = parse_volume_options(
        {"remote": "files,port=2200,user=inline:/srv", "sftp-user": "dash-o"},
        {"sftp-port": "22", "sftp-concurrency": "8"},
        CONF,
    )
    o = parsed.spec.backend.options
    # default < daemon flag < config file < connection string < -o
    assert (o["port"], o["user"], o["concurrency"]) == (2200, "dash-o", 8)


def test_s3_local_and_fsspec_remotes_from_a_config_file() -> None:
    s3 = parse_volume_options({"remote": "objects:bucket/dir/"}, {}, CONF).spec.backend
    assert (s3.type, s3.root) == ("s3", "bucket/dir")
    assert (s3.options["provider"], s3.options["secret_access_key"]) == ("Minio", "SK")
    assert s3.options["endpoint"] == "http://minio:9000"
    assert s3.options["acl"] == "private"
    assert "location_constraint" not in s3.options  # only for creating buckets
    local = parse_volume_options({"remote": "here:/data"}, {}, CONF).spec.backend
    assert (local.type, local.root, local.options) == ("local", "/data", {})
    mem = parse_volume_options({"remote": "mem:/x"}, {}, CONF).spec.backend
    assert (mem.type, mem.options) == ("memory", {"global_store": "false"})


def test_dotted_config_sections_inherit_from_their_parent() -> None:
    o = parse_volume_options({"remote": "team.bob:"}, {}, CONF).spec.backend.options
    assert (o["host"], o["user"]) == ("team.example.org", "bob")


def test_config_remote_errors() -> None:
    with pytest.raises(OptionError) as info:
        parse_volume_options({"remote": "nowhere:x"}, {}, CONF)
    assert str(info.value) == 'remote "nowhere": not found in config file /c.conf'
    with pytest.raises(OptionError, match=r'remote "notype": its section .* has no "type"'):
        parse_volume_options({"remote": "notype:x"}, {}, CONF)
    with pytest.raises(OptionError) as info:
        parse_volume_options({"remote": "old:/"}, {}, CONF)
    assert str(info.value) == "ciphers in [old] of /c.conf: not supported yet"


def test_s3_options() -> None:
    parsed = parse_volume_options(
        {
            "type": "s3",
            "s3-provider": "aws",
            "s3-chunk-size": "16M",
            "s3-upload-concurrency": "8",
            "s3-location-constraint": "EU",
            "s3-upload-cutoff": "200Mi",
            "path": "/bucket/a/b/",
        },
        {},
    )
    o = parsed.spec.backend.options
    assert parsed.spec.backend.root == "bucket/a/b"
    assert (o["provider"], o["chunk_size"], o["upload_concurrency"]) == ("AWS", 16 << 20, 8)
    assert o["force_path_style"] is True and o["list_version"] == 0
    assert "location_constraint" not in o and "upload_cutoff" not in o
    with pytest.raises(OptionError, match=r"^s3-upload-cutoff: not supported yet"):
        parse_volume_options({"type": "s3", "path": "b", "s3-upload-cutoff": "1G"}, {})
    with pytest.raises(OptionError, match=r'^s3-provider: unknown value "Nope" \(use one of AWS'):
        parse_volume_options({"type": "s3", "path": "b", "s3-provider": "Nope"}, {})
    with pytest.raises(OptionError, match=r"^the s3 backend needs a bucket"):
        parse_volume_options({"type": "s3", "path": "/"}, {})


def test_secret_values_never_appear_in_errors() -> None:
    with pytest.raises(OptionError) as info:
        parse_volume_options({"type": "s3", "path": "b", "s3-sse-customer-key": "TopSecretKey"}, {})
    assert str(info.value) == "s3-sse-customer-key: not supported yet"
    s3 = find_backend("s3")
    assert {d.name for d in s3.options if d.secret} == {
        "secret_access_key",
        "session_token",
        "sse_customer_key",
        "sse_customer_key_base64",
    }


def test_unused_options_are_checked_and_dropped() -> None:
    parsed = parse_volume_options(
        {
            "type": "sftp",
            "sftp-host": "H",
            "sftp-shell-type": "unix",
            "sftp-disable-hashcheck": "1",
        },
        {},
    )
    assert "shell_type" not in parsed.spec.backend.options
    with pytest.raises(OptionError, match=r"^sftp-disable-hashcheck: invalid boolean"):
        parse_volume_options({"type": "sftp", "sftp-host": "H", "sftp-disable-hashcheck": "x"}, {})


@pytest.mark.parametrize(
    "opts", [{"type": "local"}, {"remote": "rel/dir"}, {"remote": ":local:rel"}]
)
def test_local_backend_needs_absolute_path(opts: dict[str, str]) -> None:
    with pytest.raises(OptionError, match="absolute path"):
        parse_volume_options(opts, {})


def test_type_local_with_path() -> None:
    parsed = parse_volume_options({"type": "local", "path": "/data"}, {})
    assert (parsed.spec.backend.type, parsed.spec.backend.root) == ("local", "/data")


def test_defaults_apply_and_volume_options_override() -> None:
    defaults = {"uid": "1000", "gid": "1000", "umask": "002", "allow-other": "true"}
    parsed = parse_volume_options({"remote": "/d", "gid": "50", "allow_other": "false"}, defaults)
    assert parsed.spec.vfs.uid == 1000
    assert parsed.spec.vfs.gid == 50
    assert parsed.spec.vfs.umask == 0o002
    assert parsed.spec.mount.allow_other is False


def test_overridden_default_is_not_parsed() -> None:
    # An overridden default is never parsed; a used one is.
    parsed = parse_volume_options({"remote": "/d", "dir-cache-time": "1m"}, {"dir-cache-time": "x"})
    assert parsed.spec.vfs.dir_cache_time == 60.0
    with pytest.raises(OptionError, match="dir-cache-time"):
        parse_volume_options({"remote": "/d"}, {"dir-cache-time": "x"})


def test_backend_defaults_only_apply_to_their_type() -> None:
    defaults = {"sftp-port": "2222"}
    sftp = parse_volume_options({"type": "sftp", "sftp-host": "H"}, defaults)
    assert sftp.spec.backend.options["port"] == 2222
    local = parse_volume_options({"remote": "/d"}, defaults)
    assert local.spec.backend.options == {}


def test_bad_defaults_refused() -> None:
    with pytest.raises(OptionError, match="daemon"):
        parse_volume_options({"remote": "/d"}, {"bogus": "1"})
    with pytest.raises(OptionError, match="cannot be daemon defaults"):
        parse_volume_options({"remote": "/d"}, {"type": "sftp"})


def test_rclone_only_special_keys_refused() -> None:
    with pytest.raises(OptionError, match=r"^mount-type: not supported"):
        parse_volume_options({"remote": "/d", "mount-type": "mount"}, {})


def test_deterministic() -> None:
    opts = {"type": "sftp", "sftp-host": "H", "sftp-port": "2", "uid": "3", "allow-other": "1"}
    first = parse_volume_options(opts, {"gid": "4"})
    second = parse_volume_options(dict(reversed(list(opts.items()))), {"gid": "4"})
    assert first == second
    assert list(first.spec.backend.options) == sorted(first.spec.backend.options)


def test_sftp_secrets_are_marked() -> None:
    sftp = find_backend("sftp")
    secret = {decl.name for decl in sftp.options if decl.secret}
    obscured = {decl.name for decl in sftp.options if decl.obscured}
    assert secret == {"pass", "key_pem", "key_file_pass"}
    assert obscured == {"pass", "key_file_pass"}
