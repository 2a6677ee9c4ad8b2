"""rclone's config file (`rclone.conf`): its INI dialect, parsed without I/O.

rclone reads the file with the goconfig library; these are that library's rules,
so that a file rclone accepts means the same here:

- lines are stripped; empty lines and lines starting with `#` or `;` are skipped
  (there are no comments after a value);
- `[name]` starts a section (the name stripped); lines before any section belong
  to the `DEFAULT` section;
- `key = value` or `key: value` (split at the first `=` or `:`), both sides
  stripped. A key may be quoted with `"`, `\"\"\"` or a backtick to hold `=` or `:`.
  A value wrapped in backticks or in `\"\"\"` loses them (up to the last closing
  one); plain double quotes stay part of the value. A later key wins;
- looking a key up: a section `a.b` without the key falls back to section `a`;
  `%(other)s` in a value is replaced by `other` from `DEFAULT`, else from the
  same section, else by nothing.

Obscured values (`pass`) stay as they are; the storage adapter reveals them. An
encrypted config file (rclone's `config password`) is decrypted before it is parsed
(adapters/config/encrypted.py); this parser refuses its encrypted text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from domain.errors import OptionError

DEFAULT_SECTION = "DEFAULT"
_ENCRYPTED_MARKER = "RCLONE_ENCRYPT_V0:"
_VARIABLE = re.compile(r"%\(([^)]+)\)s")
_MAX_SUBSTITUTIONS = 200  # goconfig's bound on nested %(name)s expansion


class ConfigFileError(OptionError):
    """The config file cannot be read as rclone would read it."""


@dataclass(frozen=True)
class RcloneConfig:
    """The sections of one config file, as read at some moment.

    `path` names the file in messages. `exists` is False when there was no file
    (then `sections` is empty), so that a remote asked for by name gets an error
    naming the file that is missing.
    """

    path: str
    sections: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    exists: bool = True

    def has_section(self, name: str) -> bool:
        return name in self.sections

    def keys(self, section: str) -> list[str]:
        """The keys set in `section` itself, in file order."""
        return list(self.sections.get(section, {}))

    def value(self, section: str, key: str) -> str | None:
        """What rclone reads for `key` in `section`; None if it is not set."""
        return self._value(section, key, 0)

    def _value(self, section: str, key: str, depth: int) -> str | None:
        own = self.sections.get(section)
        if own is None:
            return None
        raw = own.get(key)
        if raw is None:
            dot = section.rfind(".")
            return self._value(section[:dot], key, depth) if dot >= 0 else None
        return self._substitute(section, raw, depth)

    def _substitute(self, section: str, value: str, depth: int) -> str:
        for _ in range(_MAX_SUBSTITUTIONS):
            match = _VARIABLE.search(value)
            if match is None or depth > _MAX_SUBSTITUTIONS:
                break
            # goconfig trims the characters "%(" and ")s" off the ends (cutsets,
            # not prefixes): "%(keys)s" looks up "key". Kept so values agree.
            name = match.group(0).lstrip("%(").rstrip(")s")
            found = self._value(DEFAULT_SECTION, name, depth + 1)
            if found is None and section != DEFAULT_SECTION:
                found = self.sections.get(section, {}).get(name)
            value = value.replace(match.group(0), found or "")
        return value


def missing_config(path: str) -> RcloneConfig:
    """The config of a file that does not exist."""
    return RcloneConfig(path=path, sections={}, exists=False)


def parse_rclone_config(text: str, path: str = "") -> RcloneConfig:
    """Parse the text of a config file. Raises ConfigFileError.

    Errors give the line number, never the line: it may hold a secret.
    """
    where = f"config file {path}" if path else "config file"
    if any(line.strip().startswith(_ENCRYPTED_MARKER) for line in text.splitlines()):
        raise ConfigFileError(
            f"{where} is encrypted with an rclone config password: decrypt it first"
        )
    text = text.removeprefix("\ufeff")
    sections: dict[str, dict[str, str]] = {}
    section = DEFAULT_SECTION
    counter = 1
    for number, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[" and line[-1] == "]":
            section = line[1:-1].strip() or DEFAULT_SECTION
            sections.setdefault(section, {})
            counter = 1
            continue
        parsed = _key_value(line)
        if parsed is None:
            raise ConfigFileError(
                f"{where}: line {number}: expected key = value (or an unclosed quote)"
            )
        key, value = parsed
        if key == "-":  # goconfig numbers "-" keys: "#1", "#2"...
            key = f"#{counter}"
            counter += 1
        if key:
            sections.setdefault(section, {})[key] = value
    frozen = {name: MappingProxyType(keys) for name, keys in sections.items()}
    return RcloneConfig(path=path, sections=MappingProxyType(frozen), exists=True)


def _key_value(line: str) -> tuple[str, str] | None:
    quote = ""
    if line.startswith('"""') and len(line) >= 6:
        quote = '"""'
    elif line[0] in '"`':
        quote = line[0]
    if quote:
        close = line.find(quote, len(quote))
        if close < 0:
            return None
        sep = _first_separator(line, close)
        if sep <= close:
            return None
        key = line[len(quote) : close]  # spaces inside the quotes are kept
    else:
        sep = _first_separator(line, 0)
        if sep <= 0:
            return None
        key = line[:sep].strip()
    value = _unquote_value(line[sep + 1 :].strip())
    return None if value is None else (key, value)


def _first_separator(line: str, start: int) -> int:
    positions = [p for p in (line.find("=", start), line.find(":", start)) if p >= 0]
    return min(positions) if positions else -1


def _unquote_value(value: str) -> str | None:
    """The value without its backticks or triple quotes; None if they do not close."""
    if len(value) >= 2 and value[0] == "`":
        quote = "`"
    elif len(value) >= 6 and value.startswith('"""'):
        quote = '"""'
    else:
        return value
    close = value.rfind(quote, len(quote))
    return value[len(quote) : close] if close >= 0 else None
