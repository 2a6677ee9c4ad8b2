import pytest

from domain.errors import OptionError
from domain.remote_spec import RemoteSpec, parse_remote


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("/some/dir", RemoteSpec("local", "/some/dir")),
        ("/", RemoteSpec("local", "/")),
        ("/a:b/c", RemoteSpec("local", "/a:b/c")),  # a colon after a slash is a path
        ("rel/dir", RemoteSpec("local", "rel/dir")),
        (":sftp:/srv", RemoteSpec("sftp", "/srv")),
        (":sftp:", RemoteSpec("sftp", "")),
        (":sftp:rel/path", RemoteSpec("sftp", "rel/path")),
        (":local:/x", RemoteSpec("local", "/x")),
        (
            ":sftp,host=example.org,user=me:/home/me",
            RemoteSpec("sftp", "/home/me", {"host": "example.org", "user": "me"}),
        ),
        (":sftp,host=H:/a:b", RemoteSpec("sftp", "/a:b", {"host": "H"})),
        (":sftp,set_modtime:/", RemoteSpec("sftp", "/", {"set_modtime": "true"})),
        (":sftp,a,b=2:", RemoteSpec("sftp", "", {"a": "true", "b": "2"})),
        (":sftp,host=:", RemoteSpec("sftp", "", {"host": ""})),
        (":sftp,host=H,host=G:", RemoteSpec("sftp", "", {"host": "G"})),
    ],
)
def test_parse_remote(remote: str, expected: RemoteSpec) -> None:
    assert parse_remote(remote) == expected


@pytest.mark.parametrize(
    ("remote", "options"),
    [
        (':sftp,pass="a,b:c":/p', {"pass": "a,b:c"}),
        (":sftp,pass='a,b:c':/p", {"pass": "a,b:c"}),
        (':sftp,pass="say ""hi""":/p', {"pass": 'say "hi"'}),
        (":sftp,pass='it''s',user=u:/p", {"pass": "it's", "user": "u"}),
        (':sftp,pass="it\'s":/p', {"pass": "it's"}),  # the other quote is literal
        (':sftp,pass=a"b:/p', {"pass": 'a"b'}),  # a quote not at the start is literal
        (':sftp,pass="":/p', {"pass": ""}),
        (':sftp,pass="""":/p', {"pass": '"'}),
    ],
)
def test_quoted_values(remote: str, options: dict[str, str]) -> None:
    parsed = parse_remote(remote)
    assert parsed.options == options
    assert parsed.path == "/p"


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("myremote:path", RemoteSpec("", "path", name="myremote")),
        ("myremote:", RemoteSpec("", "", name="myremote")),
        ("myremote:/abs/dir", RemoteSpec("", "/abs/dir", name="myremote")),
        ("rel:dir", RemoteSpec("", "dir", name="rel")),  # a name, not a local path
        ("my remote:a", RemoteSpec("", "a", name="my remote")),
        ("my.remote+x@y_z-1:", RemoteSpec("", "", name="my.remote+x@y_z-1")),
        ("Ümlaut:p", RemoteSpec("", "p", name="Ümlaut")),
        ("a,b", RemoteSpec("local", "a,b")),  # no colon at all: a local path
        (
            "files,port=2222,set_modtime:/srv",
            RemoteSpec("", "/srv", {"port": "2222", "set_modtime": "true"}, name="files"),
        ),
        (
            "s3,endpoint='http://h:9000',region=eu:bucket/dir",
            RemoteSpec("", "bucket/dir", {"endpoint": "http://h:9000", "region": "eu"}, name="s3"),
        ),
        ('r,pass="a""b":', RemoteSpec("", "", {"pass": 'a"b'}, name="r")),
    ],
)
def test_config_file_remotes(remote: str, expected: RemoteSpec) -> None:
    assert parse_remote(remote) == expected


@pytest.mark.parametrize("remote", ["-dash:p", " space:p", "trailing :p", "a!b:p", "a=b:p"])
def test_bad_config_remote_names(remote: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_remote(remote)
    assert str(info.value).startswith(f'remote "{remote}": a config remote name holds')


@pytest.mark.parametrize(
    ("remote", "fragment"),
    [
        (":sftp", "on-the-fly"),
        (":/x", "on-the-fly"),
        ("::", "backend type"),
        (":,a=1:", "backend type"),
        (":sf/tp:", "on-the-fly"),
        (":sftp,host=x", 'must end with "," or ":"'),
        (":sftp,host", 'followed by "=", "," or ":"'),
        (":sftp,ho-st=1:", "letters, digits and _"),
        (":sftp,=1:", "empty option name"),
        (':sftp,host="a"b:', "after a closing"),
        (':sftp,host="a"', "after a closing"),
        (':sftp,host="ab:', "unterminated"),
    ],
)
def test_malformed_remotes(remote: str, fragment: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_remote(remote)
    assert str(info.value).startswith(f'remote "{remote}": ')
    assert fragment in str(info.value)


def test_empty_remote() -> None:
    with pytest.raises(OptionError, match="empty"):
        parse_remote("")
