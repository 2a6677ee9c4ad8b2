import pytest

from domain.backends import backend_types, find_backend
from domain.errors import OptionError
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
    assert backend.options["chunk_size"] == 32 * 1024
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


def test_full_cache_mode_is_not_supported_yet() -> None:
    with pytest.raises(OptionError, match='vfs-cache-mode: "full" is not supported yet'):
        parse_volume_options({"remote": "/d", "vfs-cache-mode": "FULL"}, {})


def test_unsupported_option_refused_when_given() -> None:
    with pytest.raises(OptionError) as info:
        parse_volume_options({"remote": "/d", "vfs-cache-max-age": "1h"}, {})
    assert str(info.value) == "vfs-cache-max-age: not supported yet"


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


def test_unknown_backend_type_lists_known_types() -> None:
    with pytest.raises(OptionError) as info:
        parse_volume_options({"type": "nfs"}, {})
    assert str(info.value) == 'unknown backend type "nfs" (known types: local, sftp)'
    assert backend_types() == ["local", "sftp"]


def test_config_file_remote_not_supported_yet() -> None:
    with pytest.raises(OptionError, match="remotes from a config file are not supported yet"):
        parse_volume_options({"remote": "myremote:path"}, {})


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
