"""rclone's filter rules, with the examples of rclone's filtering documentation."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from domain.errors import OptionError
from domain.filters import (
    Filter,
    RuleList,
    build_filter,
    glob_to_regex,
    parse_hash_filter,
    rule_lines,
)
from domain.volume import FilterOptions

NOW = 1_700_000_000.0


def rules(*lines: str, ignore_case: bool = False) -> RuleList:
    result = RuleList(ignore_case=ignore_case)
    for line in lines:
        result.add_rule(line)
    return result


# (pattern, path, matches): the docs' "matches / does not match" examples.
GLOB_CASES = [
    # `*` stays within one name, at any depth (unanchored)
    ("*.jpg", "file.jpg", True),
    ("*.jpg", "directory/file.jpg", True),
    ("*.jpg", "file.jpeg", False),
    ("*.jpg", "file.jpg/anotherfile.png", False),
    ("file.jpg", "file.jpg", True),
    ("file.jpg", "directory/file.jpg", True),
    ("file.jpg", "afile.jpg", False),
    ("file.jpg", "directory/afile.jpg", False),
    # a leading / anchors at the root
    ("/file.jpg", "file.jpg", True),
    ("/file.jpg", "directory/file.jpg", False),
    ("/file.jpg", "afile.jpg", False),
    ("/*.jpg", "file.jpg", True),
    ("/*.jpg", "dir/file.jpg", False),
    # `**` crosses directories
    ("dir/**", "dir/file.jpg", True),
    ("dir/**", "dir/dir1/dir2/file.jpg", True),
    ("dir/**", "directory/file.jpg", False),
    ("dir/**", "adir/file.jpg", False),
    ("/dir/**", "sub/dir/file.jpg", False),
    ("dir/**", "sub/dir/file.jpg", True),
    # `?` is one character other than /
    ("l?ss", "less", True),
    ("l?ss", "lass", True),
    ("l?ss", "floss", False),
    ("l?ss", "l/ss", False),
    # character classes
    ("h[ae]llo", "hello", True),
    ("h[ae]llo", "hallo", True),
    ("h[ae]llo", "hullo", False),
    ("h[a-c]t", "hbt", True),
    ("h[^a-c]t", "hbt", False),
    ("h[^a-c]t", "hxt", True),
    # alternatives
    ("{one,two}_potato", "one_potato", True),
    ("{one,two}_potato", "two_potato", True),
    ("{one,two}_potato", "three_potato", False),
    ("{one,two}_potato", "_potato", False),
    ("*.{jpg,png}", "a/b.png", True),
    ("*.{jpg,png}", "a/b.gif", False),
    # escapes, and regex characters taken literally
    ("\\*.jpg", "*.jpg", True),
    ("\\*.jpg", "a.jpg", False),
    ("a+b(c).txt", "a+b(c).txt", True),
    ("a.b", "axb", False),
    # {{regexp}}
    ("{{.*\\.jpe?g}}", "dir/a.jpeg", True),
    ("{{.*\\.jpe?g}}", "dir/a.png", False),
    ("/{{[0-9]+}}.log", "2024.log", True),
    ("/{{[0-9]+}}.log", "x2024.log", False),
]


@pytest.mark.parametrize(("glob", "path", "matches"), GLOB_CASES)
def test_glob_matches_as_rclone_documents(glob: str, path: str, matches: bool) -> None:
    import re

    assert (re.search(glob_to_regex(glob), path) is not None) is matches


def test_ignore_case() -> None:
    import re

    assert re.search(glob_to_regex("*.JPG", ignore_case=True), "a/b.jpg")
    assert not re.search(glob_to_regex("*.JPG"), "a/b.jpg")


@pytest.mark.parametrize(
    ("glob", "why"),
    [
        ("a[b", "mismatched '['"),
        ("a]b", "mismatched ']'"),
        ("{a,b", "mismatched '{'"),
        ("a}", "mismatched '}'"),
        ("{a,{b}}", "nested '{'"),
        ("a***", "too many stars"),
        ("{{(}}", "bad regexp"),
        ("a\\", "trailing"),
    ],
)
def test_bad_globs_are_refused_with_the_pattern(glob: str, why: str) -> None:
    with pytest.raises(OptionError) as info:
        glob_to_regex(glob, option="exclude")
    assert str(info.value).startswith("exclude: ")
    assert why in str(info.value)
    assert glob in str(info.value)


def test_first_matching_rule_wins() -> None:
    # The docs' example: "+ *.png" before "- secret*" keeps secret.png.
    ruled = rules("+ *.png", "- secret*", "+ *")
    assert ruled.include_file("secret.png")
    assert not ruled.include_file("secret.txt")
    assert ruled.include_file("other.txt")
    reordered = rules("- secret*", "+ *.png")
    assert not reordered.include_file("secret.png")


def test_no_matching_rule_includes() -> None:
    assert rules("- *.bak").include_file("a.txt")
    assert RuleList().include_file("anything")


def test_bang_clears_the_rules_so_far() -> None:
    ruled = rules("- *.txt", "!", "- *.bak")
    assert ruled.include_file("a.txt")
    assert not ruled.include_file("a.bak")


def test_excluding_a_directory_hides_it_and_all_below() -> None:
    ruled = rules("- secret/")
    assert not ruled.include_dir("secret")
    assert not ruled.include_dir("a/secret")
    assert not ruled.include_file("secret/file.txt")
    assert ruled.include_file("secret")  # a file named secret is no directory
    assert ruled.include_dir("secrets")


def test_dir_include_rule_matches_directories_only() -> None:
    ruled = rules("+ keep/", "- *")
    assert ruled.include_dir("keep")
    assert not ruled.include_file("keep")


def test_include_keeps_the_directories_a_match_could_be_in() -> None:
    anchored = rules("+ /photos/2024/*.jpg", "- /**")
    assert anchored.include_dir("photos")
    assert anchored.include_dir("photos/2024")
    assert not anchored.include_dir("music")
    assert not anchored.include_dir("photos/2023")
    assert anchored.include_file("photos/2024/a.jpg")
    assert not anchored.include_file("photos/2024/a.png")
    unanchored = rules("+ *.jpg", "- /**")
    assert unanchored.include_dir("any/depth")
    assert unanchored.include_file("any/depth/a.jpg")
    assert not unanchored.include_file("any/depth/a.png")


@pytest.mark.parametrize("line", ["x", "+x", "* a", "+", "-"])
def test_malformed_filter_rules(line: str) -> None:
    with pytest.raises(OptionError):
        rules(line)


def test_rule_files_skip_comments_and_blank_lines() -> None:
    lines = ["# comment", "; also", "", "  + *.txt  ", "- *\r\n"]
    assert rule_lines(lines) == ["+ *.txt", "- *"]
    assert rule_lines(["# kept", " a "], raw=True) == ["# kept", " a "]


def build(read: dict[str, list[str]] | None = None, **kw: object) -> Filter:
    files = read or {}

    def read_lines(path: str) -> list[str]:
        if path not in files:
            raise FileNotFoundError(2, "No such file or directory")
        return files[path]

    return build_filter(replace(FilterOptions(), **kw), read_lines, NOW)  # type: ignore[arg-type]


def test_include_adds_the_implied_exclude_of_everything_else() -> None:
    flt = build(include=("*.jpg",))
    assert flt.include_file("a.jpg", 1, NOW)
    assert not flt.include_file("a.txt", 1, NOW)
    assert flt.include_dir("sub")  # a jpg may be below


def test_filter_rules_alone_add_no_implied_exclude() -> None:
    flt = build(filter=("+ *.jpg",))
    assert flt.include_file("a.txt", 1, NOW)


def test_rclone_order_include_then_exclude_then_filter() -> None:
    # --include rules come first whatever the order on the command line.
    flt = build(exclude=("a*",), include=("*.jpg",), filter=("+ *.txt",))
    assert flt.include_file("apple.jpg", 1, NOW)  # include before exclude
    assert not flt.include_file("apple.txt", 1, NOW)  # exclude before filter


def test_the_implied_exclude_comes_after_filter_rules() -> None:
    flt = build(include=("*.jpg",), filter=("+ *.txt",))
    assert flt.include_file("pear.txt", 1, NOW)
    assert not flt.include_file("pear.png", 1, NOW)


def test_rule_files() -> None:
    flt = build(
        {"/f": ["# mine", "- *.bak", "+ *"], "/i": ["*.md"], "/e": ["README*"]},
        filter_from=("/f",),
        include_from=("/i",),
        exclude_from=("/e",),
    )
    assert flt.include_file("doc.md", 1, NOW)
    assert flt.include_file("README.md", 1, NOW)  # include-from comes before exclude-from
    assert not flt.include_file("README.txt", 1, NOW)
    assert not flt.include_file("x.bak", 1, NOW)
    assert flt.include_file("x.txt", 1, NOW)  # "+ *" before the implied exclude


def test_a_missing_rules_file_is_named() -> None:
    with pytest.raises(OptionError) as info:
        build(filter_from=("/nope",))
    assert str(info.value).startswith("filter-from: can't read /nope")


def test_files_from_shows_only_those_files_and_their_directories() -> None:
    flt = build({"/l": ["# list", "/a/b/c.txt", "top.txt", " d/e.txt "]}, files_from=("/l",))
    assert flt.include_file("a/b/c.txt", 1, NOW)
    assert flt.include_file("top.txt", 1, NOW)
    assert flt.include_file("d/e.txt", 1, NOW)  # lines are trimmed
    assert not flt.include_file("a/b/other.txt", 1, NOW)
    assert flt.include_dir("a") and flt.include_dir("a/b") and flt.include_dir("d")
    assert not flt.include_dir("x")


def test_files_from_raw_keeps_spaces() -> None:
    flt = build({"/l": [" spaced.txt"]}, files_from_raw=("/l",))
    assert flt.include_file(" spaced.txt", 1, NOW)
    assert not flt.include_file("spaced.txt", 1, NOW)


def test_sizes_and_ages_apply_to_files() -> None:
    flt = build(min_size=10, max_size=100, min_age=3600.0, max_age=86400.0)
    old = NOW - 7200
    assert flt.include_file("a", 10, old) and flt.include_file("a", 100, old)
    assert not flt.include_file("a", 9, old)
    assert not flt.include_file("a", 101, old)
    assert not flt.include_file("a", 50, NOW - 60)  # younger than min-age
    assert not flt.include_file("a", 50, NOW - 2 * 86400)  # older than max-age
    assert flt.include_dir("any")


def test_max_depth() -> None:
    flt = build(max_depth=1)
    assert flt.include_file("top.txt", 1, NOW)
    assert flt.include_dir("sub")
    assert not flt.include_file("sub/deeper.txt", 1, NOW)
    assert not flt.include_dir("sub/deeper")
    assert build(max_depth=-1).include_file("a/b/c/d", 1, NOW)


def test_exclude_if_present_names_markers() -> None:
    flt = build(exclude_if_present=(".ignore",))
    assert flt.active
    assert flt.marks_excluded(["a", ".ignore"])
    assert not flt.marks_excluded(["a"])


def test_hash_filter_partitions_files() -> None:
    paths = [f"dir/file{i}" for i in range(200)]
    seen: list[str] = []
    for bucket in range(3):
        flt = build(hash_filter=f"{bucket}/3")
        chosen = [p for p in paths if flt.include_file(p, 1, NOW)]
        assert 0 < len(chosen) < len(paths)
        seen.extend(chosen)
    assert sorted(seen) == sorted(paths)  # every file in exactly one bucket


def test_hash_filter_values() -> None:
    assert parse_hash_filter("") is None
    picked = parse_hash_filter("@/4", random.Random(1))
    assert picked is not None and 0 <= picked.bucket < 4 and picked.buckets == 4
    for bad in ("4/4", "1/0", "x/2", "1-2"):
        with pytest.raises(OptionError) as info:
            parse_hash_filter(bad)
        assert str(info.value).startswith("hash-filter: ")


def test_no_flags_no_filter() -> None:
    flt = build()
    assert not flt.active
    assert flt.include_file("x", 0, 0.0) and flt.include_dir("y")
    assert not build(delete_excluded=True, ignore_case=True).active
