import argparse

import pytest

from domain.errors import OptionError
from domain.options import OPTIONS, apply_option_values
from domain.volume_options import parse_volume_options
from entrypoints.flags import add_option_flags, given_option_values


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloudvol", exit_on_error=False)
    parser.add_argument("--base-dir")  # a daemon flag, to check there is no clash
    parser.add_argument("positional", nargs="*")
    add_option_flags(parser)
    return parser


def given(*argv: str) -> dict[str, str]:
    return given_option_values(make_parser().parse_args(list(argv)))


def test_nothing_given_gives_nothing() -> None:
    assert given() == {}


def test_every_option_is_a_flag() -> None:
    text = make_parser().format_help()
    for decl in OPTIONS:
        assert f"--{decl.name}" in text, decl.name


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--allow-other"], "true"),
        (["--allow-other=true"], "true"),
        (["--allow-other=false"], "false"),
        (["--allow-other=0"], "0"),
        (["--allow-other=T"], "T"),
    ],
)
def test_boolean_flags(argv: list[str], expected: str) -> None:
    assert given(*argv) == {"allow-other": expected}


def test_boolean_flag_does_not_swallow_the_next_argument() -> None:
    ns = make_parser().parse_args(["--allow-other", "false", "--read-only"])
    assert ns.positional == ["false"]
    assert given_option_values(ns) == {"allow-other": "true", "read-only": "true"}


def test_boolean_flag_with_bad_value_is_refused() -> None:
    with pytest.raises((argparse.ArgumentError, SystemExit)):
        make_parser().parse_args(["--allow-other=yes"])


def test_valued_flags_both_forms() -> None:
    assert given("--dir-cache-time", "10m", "--umask=002", "--uid", "1000") == {
        "dir-cache-time": "10m",
        "umask": "002",
        "uid": "1000",
    }


def test_repeatable_lists_join_with_commas() -> None:
    values = given("--fuse-flag", "a", "--fuse-flag=b", "-o", "ro", "--option", "x=1")
    assert values == {"fuse-flag": "a,b", "option": "ro,x=1"}
    parsed = parse_volume_options({"remote": "/d"}, values)
    assert parsed.spec.mount.fuse_flags == ("a", "b")
    assert parsed.spec.mount.extra_options == ("ro", "x=1")


def test_daemon_flag_not_mixed_in() -> None:
    ns = make_parser().parse_args(["--base-dir", "/v", "--read-only"])
    assert ns.base_dir == "/v"
    assert given_option_values(ns) == {"read-only": "true"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--allow-idmap"], "allow-idmap: not supported: "),
        (["--vfs-cache-mode", "most"], "vfs-cache-mode: invalid"),
        (["--metadata-include", "k=v"], "metadata-include: not supported yet"),
        (["--dir-cache-time", "soon"], "dir-cache-time: invalid duration"),
    ],
)
def test_unsupported_or_malformed_flags_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(OptionError) as info:
        given(*argv)
    assert str(info.value).startswith(message)


def test_given_values_are_volume_defaults() -> None:
    defaults = given("--allow-other", "--vfs-cache-mode=off", "--gid", "5")
    parsed = parse_volume_options({"remote": "/d", "gid": "6"}, defaults)
    assert parsed.spec.mount.allow_other is True
    assert parsed.spec.vfs.gid == 6


def test_help_shows_formatted_defaults_and_support() -> None:
    text = " ".join(make_parser().format_help().split())
    assert "(default 5m0s)" in text
    assert "(default 16Mi)" in text
    assert "(default 0777)" in text
    assert "not supported yet" in text


def test_repeated_list_flags_keep_items_that_hold_commas() -> None:
    values = given("--include", "*.{jpg,png}", "--include", "*.txt")
    assert values == {"include": '"*.{jpg,png}",*.txt'}
    _, vfs = apply_option_values(values)
    assert vfs.filters.include == ("*.{jpg,png}", "*.txt")
