"""rclone's filter rules: which files and directories a volume shows.

Patterns are rclone's globs: `*` is any run of characters but `/`, `**` any run
including `/`, `?` one character but `/`, `[...]` a character class, `{a,b}`
alternatives, `{{regexp}}` a regular expression, `\\` escapes the next character.
A pattern starting with `/` is anchored at the volume's root, any other matches
the end of a path at a `/` boundary; one ending with `/` names directories.

Rules are tried in order and the first that matches decides; with none matching
a file is shown. The flags add their rules in rclone's order: `--include` and
`--include-from`, then `--exclude` and `--exclude-from`, then `--filter` and
`--filter-from` (where `+ p` includes, `- p` excludes and `!` clears every rule
so far), and last, when any include flag was given, the implied `- /**`.
`--files-from` (and `-raw`) shows only the files it names and the directories
that lead to them, and cannot be mixed with rules.

Directories: an exclude rule ending in `/` (or holding `**`) hides directories
too; an include rule for files keeps shown the directories a match could be in
(the ones on its path if it is anchored, every one if it is not), so that the
implied `- /**` does not hide them. Sizes and ages apply to files only.

Rules files are read by the caller (`read_lines`), so this module stays pure.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from domain.errors import OptionError
from domain.volume import UNLIMITED, FilterOptions


@dataclass(frozen=True)
class Rule:
    include: bool
    glob: str
    regex: re.Pattern[str]

    def matches(self, path: str) -> bool:
        return self.regex.search(path) is not None


def glob_to_regex(glob: str, *, ignore_case: bool = False, option: str = "filter") -> str:
    """The regular expression (Python syntax) that matches paths as `glob` does."""
    out = ["(?i)"] if ignore_case else []
    text = glob
    if text.startswith("/"):
        text = text[1:]
        out.append("^")
    else:
        out.append("(^|/)")
    stars = 0
    in_braces = False
    brackets = 0
    i = 0

    def bad(why: str) -> OptionError:
        return OptionError(f'{option}: {why} in pattern "{glob}"')

    def flush_stars() -> None:
        nonlocal stars
        if stars == 1:
            out.append("[^/]*")
        elif stars == 2:
            out.append(".*")
        elif stars > 2:
            raise bad("too many stars")
        stars = 0

    while i < len(text):
        c = text[i]
        if c != "*":
            flush_stars()
        if brackets:
            out.append(c)
            if c == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif c == "[":
                brackets += 1
            elif c == "]":
                brackets -= 1
        elif c == "\\":
            if i + 1 >= len(text):
                raise bad("trailing \\")
            out.append(re.escape(text[i + 1]))
            i += 1
        elif c == "*":
            stars += 1
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            out.append("[")
            brackets = 1
        elif c == "]":
            raise bad("mismatched ']'")
        elif c == "{" and text.startswith("{{", i):
            end = text.find("}}", i + 2)
            if end < 0:
                raise bad("mismatched '{{'")
            body = text[i + 2 : end]
            try:
                re.compile(body)
            except re.error as exc:
                raise bad(f"bad regexp {{{{{body}}}}} ({exc})") from None
            out.append(f"(?:{body})")
            i = end + 1
        elif c == "{":
            if in_braces:
                raise bad("nested '{'")
            in_braces = True
            out.append("(?:")
        elif c == "}":
            if not in_braces:
                raise bad("mismatched '}'")
            in_braces = False
            out.append(")")
        elif c == "," and in_braces:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    flush_stars()
    if brackets:
        raise bad("mismatched '['")
    if in_braces:
        raise bad("mismatched '{'")
    out.append("$")
    regex = "".join(out)
    try:
        re.compile(regex)
    except re.error as exc:
        raise bad(f"bad character class ({exc})") from None
    return regex


def _dir_globs(glob: str) -> list[str]:
    """Directory globs for the directories a file glob could match in."""
    if not glob.startswith("/"):
        return ["**"]  # unanchored: it may match below any directory
    result = []
    parts = glob[1:].split("/")[:-1]
    prefix = "/"
    for part in parts:
        if "**" in part:
            result.append(prefix + "**")
            break
        prefix += part + "/"
        result.append(prefix)
    return result


@dataclass
class RuleList:
    ignore_case: bool = False
    file_rules: list[Rule] = field(default_factory=list)
    dir_rules: list[Rule] = field(default_factory=list)

    def _rule(self, include: bool, glob: str, option: str) -> Rule:
        regex = glob_to_regex(glob, ignore_case=self.ignore_case, option=option)
        return Rule(include, glob, re.compile(regex))

    def add(self, include: bool, glob: str, option: str = "filter") -> None:
        """rclone's Filter.Add: one glob, as a file rule, a directory rule or both."""
        if not glob:
            raise OptionError(f"{option}: empty pattern")
        is_dir_rule = glob.endswith("/")
        is_file_rule = not is_dir_rule
        if is_dir_rule and not include:
            glob += "**"  # excluding "dir/" excludes everything below it
        if "**" in glob:
            is_dir_rule = is_file_rule = True
        if is_file_rule:
            self.file_rules.append(self._rule(include, glob, option))
            if include or glob == "*":
                for dir_glob in _dir_globs(glob):
                    self.dir_rules.append(self._rule(include, dir_glob, option))
        if is_dir_rule:
            self.dir_rules.append(self._rule(include, glob, option))

    def add_rule(self, line: str, option: str = "filter") -> None:
        """A `--filter` rule: "+ glob", "- glob" or "!" (clear every rule so far)."""
        if line == "!":
            self.file_rules.clear()
            self.dir_rules.clear()
        elif line.startswith("+ "):
            self.add(True, line[2:], option)
        elif line.startswith("- "):
            self.add(False, line[2:], option)
        else:
            raise OptionError(
                f'{option}: malformed rule "{line}" (use "+ pattern", "- pattern" or "!")'
            )

    @staticmethod
    def _first(rules: list[Rule], path: str) -> bool:
        for rule in rules:
            if rule.matches(path):
                return rule.include
        return True

    def include_file(self, path: str) -> bool:
        return self._first(self.file_rules, path)

    def include_dir(self, path: str) -> bool:
        return self._first(self.dir_rules, path.rstrip("/") + "/")

    @property
    def empty(self) -> bool:
        return not self.file_rules and not self.dir_rules


@dataclass(frozen=True)
class HashBucket:
    bucket: int
    buckets: int

    def holds(self, path: str) -> bool:
        # MD5 of the path relative to the volume: stable, but not rclone's buckets.
        digest = hashlib.md5(path.encode(), usedforsecurity=False).digest()
        return int.from_bytes(digest[:8], "big") % self.buckets == self.bucket


def parse_hash_filter(raw: str, rng: random.Random | None = None) -> HashBucket | None:
    """`K/N` (0 <= K < N) or `@/N` (a random bucket); "" is no hash filter."""
    text = raw.strip()
    if not text:
        return None
    match = re.fullmatch(r"(@|\d+)/(\d+)", text)
    if match is None or int(match.group(2)) < 1:
        raise OptionError(f'hash-filter: invalid value "{raw}" (use K/N with 0 <= K < N, or @/N)')
    buckets = int(match.group(2))
    if match.group(1) == "@":
        return HashBucket((rng or random.Random()).randrange(buckets), buckets)
    bucket = int(match.group(1))
    if bucket >= buckets:
        raise OptionError(f'hash-filter: bucket {bucket} is not below {buckets} in "{raw}"')
    return HashBucket(bucket, buckets)


def rule_lines(lines: Iterable[str], *, raw: bool = False) -> list[str]:
    """rclone's reading of a rules file: lines trimmed, empty ones and comments
    (`#`, `;`) skipped; with `raw` (files-from-raw) every line as it is."""
    result = []
    for line in lines:
        line = line.rstrip("\r\n")
        if not raw:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
        result.append(line)
    return result


@dataclass
class Filter:
    """Decides, for one volume, which remote entries are shown."""

    rules: RuleList = field(default_factory=RuleList)
    files: frozenset[str] | None = None  # --files-from: the only files shown
    dirs: frozenset[str] = frozenset()  # ... and the directories leading to them
    min_size: int = UNLIMITED
    max_size: int = UNLIMITED
    modtime_from: float | None = None  # --max-age: shown if not older
    modtime_to: float | None = None  # --min-age: shown if not younger
    max_depth: int = -1
    exclude_if_present: tuple[str, ...] = ()
    hash_bucket: HashBucket | None = None

    @property
    def active(self) -> bool:
        return (
            not self.rules.empty
            or self.files is not None
            or self.min_size >= 0
            or self.max_size >= 0
            or self.modtime_from is not None
            or self.modtime_to is not None
            or self.max_depth >= 0
            or bool(self.exclude_if_present)
            or self.hash_bucket is not None
        )

    def _too_deep(self, path: str) -> bool:
        return self.max_depth >= 0 and path.count("/") + 1 > self.max_depth

    def include_file(self, path: str, size: int, mtime: float) -> bool:
        """Whether the file at `path` (relative, no leading "/") is shown."""
        path = path.strip("/")
        if self._too_deep(path):
            return False
        if self.files is not None and path not in self.files:
            return False
        if self.modtime_from is not None and mtime < self.modtime_from:
            return False
        if self.modtime_to is not None and mtime > self.modtime_to:
            return False
        if self.min_size >= 0 and size < self.min_size:
            return False
        if self.max_size >= 0 and size > self.max_size:
            return False
        if self.hash_bucket is not None and not self.hash_bucket.holds(path):
            return False
        return self.rules.include_file(path)

    def include_dir(self, path: str) -> bool:
        """Whether the directory at `path` is shown (before --exclude-if-present,
        which needs its listing)."""
        path = path.strip("/")
        if not path:
            return True  # the root is always there
        if self._too_deep(path):
            return False
        if self.files is not None:
            return path in self.dirs
        return self.rules.include_dir(path)

    def marks_excluded(self, names: Iterable[str]) -> bool:
        """Whether a directory holding `names` is hidden by --exclude-if-present."""
        return any(name in self.exclude_if_present for name in names)


def _add_files(files: set[str], dirs: set[str], line: str) -> None:
    name = line.strip("/")
    files.add(name)
    parent = name.rpartition("/")[0]
    while parent and parent not in dirs:
        dirs.add(parent)
        parent = parent.rpartition("/")[0]


def _check_paths(option: str, paths: Iterable[str]) -> None:
    for path in paths:
        if path == "-":
            raise OptionError(
                f"{option}: standard input (-) means nothing to a volume; name a file"
            )


def check_filter_options(options: FilterOptions) -> None:
    """Raise OptionError for what can be checked without reading files."""
    rules = RuleList(ignore_case=options.ignore_case)
    for glob in options.include:
        rules.add(True, glob, "include")
    for glob in options.exclude:
        rules.add(False, glob, "exclude")
    for line in options.filter:
        rules.add_rule(line, "filter")
    for option, paths in (
        ("filter-from", options.filter_from),
        ("include-from", options.include_from),
        ("exclude-from", options.exclude_from),
        ("files-from", options.files_from),
        ("files-from-raw", options.files_from_raw),
    ):
        _check_paths(option, paths)
    if (options.files_from or options.files_from_raw) and not rules.empty:
        raise OptionError(
            "files-from: it overrides every other filter rule; use it alone "
            "(or with files-from-raw), not with include, exclude or filter"
        )
    parse_hash_filter(options.hash_filter, random.Random(0))
    if options.max_depth < -1:
        raise OptionError(f"max-depth: {options.max_depth} (use -1 for no limit, or a depth)")


def build_filter(
    options: FilterOptions,
    read_lines: Callable[[str], list[str]],
    now: float,
    rng: random.Random | None = None,
) -> Filter:
    """The volume's filter; `read_lines(path)` gives a rules file's lines (and
    raises OSError), `now` is when ages are measured from, as rclone fixes them
    at start."""
    check_filter_options(options)
    rules = RuleList(ignore_case=options.ignore_case)

    def lines_of(option: str, path: str, raw: bool = False) -> list[str]:
        try:
            return rule_lines(read_lines(path), raw=raw)
        except OSError as exc:
            raise OptionError(f"{option}: can't read {path}: {exc.strerror or exc}") from None

    implied_exclude = bool(options.include or options.include_from)
    for glob in options.include:
        rules.add(True, glob, "include")
    for path in options.include_from:
        for line in lines_of("include-from", path):
            rules.add(True, line, "include-from")
    for glob in options.exclude:
        rules.add(False, glob, "exclude")
    for path in options.exclude_from:
        for line in lines_of("exclude-from", path):
            rules.add(False, line, "exclude-from")
    for line in options.filter:
        rules.add_rule(line, "filter")
    for path in options.filter_from:
        for line in lines_of("filter-from", path):
            rules.add_rule(line, "filter-from")
    files: set[str] | None = None
    dirs: set[str] = set()
    if options.files_from or options.files_from_raw:
        if not rules.empty:
            raise OptionError(
                "files-from: it overrides every other filter rule; use it alone "
                "(or with files-from-raw), not with include, exclude or filter"
            )
        files = set()
        for path in options.files_from:
            for line in lines_of("files-from", path):
                _add_files(files, dirs, line)
        for path in options.files_from_raw:
            for line in lines_of("files-from-raw", path, raw=True):
                _add_files(files, dirs, line)
    if implied_exclude:
        rules.add(False, "/**", "include")
    return Filter(
        rules=rules,
        files=frozenset(files) if files is not None else None,
        dirs=frozenset(dirs),
        min_size=options.min_size,
        max_size=options.max_size,
        modtime_from=None if options.max_age == float("inf") else now - options.max_age,
        modtime_to=None if options.min_age == float("inf") else now - options.min_age,
        max_depth=options.max_depth,
        exclude_if_present=options.exclude_if_present,
        hash_bucket=parse_hash_filter(options.hash_filter, rng),
    )
