import pytest

from domain.rclone_config import (
    DEFAULT_SECTION,
    ConfigFileError,
    RcloneConfig,
    missing_config,
    parse_rclone_config,
)

# As `rclone config` writes them (sftp records shell_type and the hash commands by
# itself after connecting), with comments and spacing a person might add.
RCLONE_CONF = """\
# rclone.conf of a user
; another comment style

[files]
type = sftp
host = example.org
user = me
port = 2222
pass = XG2NGkIb8hZ4rkCCeyTEjXbw0X3R5eWb
shell_type = unix
md5sum_command = md5sum
sha1sum_command = sha1sum

[objects]
type = s3
provider = Minio
env_auth = false
access_key_id = AKIDEXAMPLE
secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCY
endpoint = http://minio.local:9000
region =

[here]
type = local
"""


def test_sftp_s3_and_local_sections() -> None:
    config = parse_rclone_config(RCLONE_CONF, "/etc/rclone.conf")
    assert config.path == "/etc/rclone.conf" and config.exists
    assert list(config.sections) == ["files", "objects", "here"]
    assert dict(config.sections["files"]) == {
        "type": "sftp",
        "host": "example.org",
        "user": "me",
        "port": "2222",
        "pass": "XG2NGkIb8hZ4rkCCeyTEjXbw0X3R5eWb",  # still obscured
        "shell_type": "unix",
        "md5sum_command": "md5sum",
        "sha1sum_command": "sha1sum",
    }
    assert config.value("objects", "secret_access_key") == "wJalrXUtnFEMI/K7MDENG+bPxRfiCY"
    assert config.value("objects", "endpoint") == "http://minio.local:9000"
    assert config.value("objects", "region") == ""  # set, but empty
    assert config.value("objects", "absent") is None
    assert config.value("nowhere", "type") is None
    assert config.value("here", "type") == "local"
    assert config.keys("here") == ["type"]
    assert config.has_section("files") and not config.has_section("FILES")


def test_goconfig_line_rules() -> None:
    text = "\r\n".join(
        [
            "\ufefforphan = before any section",
            "[  spaced name  ]",
            "colon: separates too",
            "empty =",
            "dup = first",
            "dup = second",
            "equals = a=b:c",
            'plain_quotes = "kept as they are"',
            "backticks = `  #not a comment, spaces kept  `",
            'triple = """x = y"""',
            '"quoted key = x" = value',
            "- = numbered",
            "- = again",
            "   indented = yes   ",
            "[]",
            "default_too = yes",
        ]
    )
    config = parse_rclone_config(text)
    assert config.value(DEFAULT_SECTION, "orphan") == "before any section"
    assert config.value(DEFAULT_SECTION, "default_too") == "yes"
    s = config.sections["spaced name"]
    assert s["colon"] == "separates too"
    assert s["empty"] == ""
    assert s["dup"] == "second"
    assert s["equals"] == "a=b:c"
    assert s["plain_quotes"] == '"kept as they are"'
    assert s["backticks"] == "  #not a comment, spaces kept  "
    assert s["triple"] == "x = y"
    assert s["quoted key = x"] == "value"
    assert (s["#1"], s["#2"]) == ("numbered", "again")
    assert s["indented"] == "yes"


def test_dotted_sections_fall_back_and_values_substitute() -> None:
    text = """
[DEFAULT]
domain = example.org

[team]
user = shared
host = files.%(domain)s

[team.alice]
user = alice
url = %(user)s@%(host)s %(missing)s!
"""
    config = parse_rclone_config(text)
    assert config.value("team.alice", "user") == "alice"
    assert config.value("team.alice", "host") == "files.example.org"  # from [team]
    # A name is looked up in DEFAULT, then in the section's own keys only (no
    # fallback to [team]); not found, it becomes nothing.
    assert config.value("team.alice", "url") == "alice@ !"
    assert config.value("team", "host") == "files.example.org"
    assert config.keys("team.alice") == ["user", "url"]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[r]\ntype = sftp\nhunter2\n", 3),
        ("[r]\n= no key\n", 2),
        ("[r]\nkey = `s3cret\n", 2),
        ('[r]\n"open key = 1\n', 2),
    ],
)
def test_malformed_lines_name_the_line_not_its_content(text: str, line: int) -> None:
    with pytest.raises(ConfigFileError) as info:
        parse_rclone_config(text, "/c.conf")
    message = str(info.value)
    assert message.startswith(f"config file /c.conf: line {line}: ")
    assert "hunter2" not in message and "s3cret" not in message


def test_encrypted_config_is_refused() -> None:
    text = "# Encrypted rclone configuration File\n\nRCLONE_ENCRYPT_V0:\nQ2l0eSBvZiBzZWNyZXRz\n"
    with pytest.raises(ConfigFileError, match=r"encrypted .*decrypt it first"):
        parse_rclone_config(text, "/c.conf")


def test_empty_and_missing_configs() -> None:
    assert parse_rclone_config("").sections == {}
    missing = missing_config("/nowhere.conf")
    assert missing == RcloneConfig("/nowhere.conf", {}, exists=False)
    assert missing.value("x", "type") is None


def test_config_is_read_only() -> None:
    config = parse_rclone_config("[r]\ntype = local\n")
    with pytest.raises(TypeError):
        config.sections["r"]["type"] = "sftp"  # type: ignore[index]
