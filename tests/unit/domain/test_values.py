import math

import pytest

from domain.errors import OptionError
from domain.values import (
    DURATION_OFF,
    ValueType,
    format_duration,
    format_mode,
    format_size,
    parse_bool,
    parse_cache_mode,
    parse_duration,
    parse_int,
    parse_mode,
    parse_size,
    parse_string_list,
    parse_tristate,
    parse_uint32,
)
from domain.volume import UNLIMITED, CacheMode

# --- booleans: exactly Go's strconv.ParseBool ---


@pytest.mark.parametrize("raw", ["1", "t", "T", "true", "TRUE", "True"])
def test_bool_true_spellings(raw: str) -> None:
    assert parse_bool("x", raw) is True


@pytest.mark.parametrize("raw", ["0", "f", "F", "false", "FALSE", "False"])
def test_bool_false_spellings(raw: str) -> None:
    assert parse_bool("x", raw) is False


@pytest.mark.parametrize("raw", ["", "yes", "no", "tRuE", "2", "on", " true"])
def test_bool_rejects_other_spellings(raw: str) -> None:
    with pytest.raises(OptionError, match=r"^allow-other: invalid boolean .*true or false"):
        parse_bool("allow-other", raw)


def test_tristate() -> None:
    assert parse_tristate("x", "unset") is None
    assert parse_tristate("x", "true") is True
    assert parse_tristate("x", "0") is False
    with pytest.raises(OptionError, match="unset"):
        parse_tristate("x", "maybe")


# --- sizes ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", 0),
        ("1", 1024),  # a bare number is KiB
        ("1.5", 1536),
        ("100B", 100),
        ("100b", 100),
        ("1K", 1024),
        ("1k", 1024),
        ("1Ki", 1024),
        ("1KiB", 1024),
        ("10M", 10 << 20),
        ("128Mi", 128 << 20),
        ("1.5G", 3 << 29),
        ("1.5Gi", 3 << 29),
        ("2GiB", 2 << 30),
        ("1T", 1 << 40),
        ("1P", 1 << 50),
        (".5M", 512 << 10),
        ("off", UNLIMITED),
        ("OFF", UNLIMITED),
        ("-1", UNLIMITED),
    ],
)
def test_size(raw: str, expected: int) -> None:
    assert parse_size("s", raw) == expected


@pytest.mark.parametrize("raw", ["", "12Q", "-2", "-1K", "1BiB", "K", "1 M", "1e3", "1.2.3M", "M1"])
def test_size_errors_name_option_and_forms(raw: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_size("vfs-cache-max-size", raw)
    message = str(info.value)
    assert message.startswith(f'vfs-cache-max-size: invalid size "{raw}" (use a number')
    assert '"off"' in message


def test_size_error_message_exact() -> None:
    with pytest.raises(OptionError) as info:
        parse_size("vfs-cache-max-size", "12Q")
    assert str(info.value) == (
        'vfs-cache-max-size: invalid size "12Q" (use a number with an optional suffix '
        'B, K, M, G, T, P, optionally followed by i or iB, e.g. 10M or 1.5Gi; or "off")'
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (-1, "off"),
        (0, "0"),
        (100, "100B"),
        (1024, "1Ki"),
        (32 * 1024, "32Ki"),
        (16 << 20, "16Mi"),
        (128 << 20, "128Mi"),
        (3 << 29, "1536Mi"),
        (1 << 40, "1Ti"),
        (1 << 50, "1Pi"),
        (1025, "1025B"),
    ],
)
def test_format_size(value: int, text: str) -> None:
    assert format_size(value) == text
    assert parse_size("s", text) == value


# --- values as rclone prints them ---

# The defaults shown by its `serve docker` page
# (tests/data/rclone_serve_docker.md) and by Debian's rclone 1.60.1
# (`rclone serve docker --help`, `rclone help flags`).
RCLONE_PRINTED_SIZES = [
    (128 << 20, "128Mi"),  # --vfs-read-chunk-size
    (128 << 10, "128Ki"),  # --max-read-ahead
    (UNLIMITED, "off"),  # --vfs-cache-max-size
    (16 << 20, "16Mi"),  # --buffer-size (1.60.1)
    (250 << 20, "250Mi"),  # --multi-thread-cutoff (1.60.1)
    (100 << 10, "100Ki"),  # --streaming-upload-cutoff (1.60.1)
]

RCLONE_PRINTED_DURATIONS = [
    (3600.0, "1h0m0s"),  # --vfs-cache-max-age
    (300.0, "5m0s"),  # --dir-cache-time
    (60.0, "1m0s"),  # --vfs-cache-poll-interval
    (5.0, "5s"),  # --vfs-write-back
    (1.0, "1s"),  # --vfs-write-wait
    (0.02, "20ms"),  # --vfs-read-wait
    (0.0, "0s"),  # --daemon-timeout
]


@pytest.mark.parametrize(("value", "text"), RCLONE_PRINTED_SIZES)
def test_sizes_are_written_as_rclone_writes_them(value: int, text: str) -> None:
    assert format_size(value) == text
    assert parse_size("s", text) == value


def test_sizes_in_rclone_1_60_prose_are_binary_units() -> None:
    # 1.60.1's help text says "--vfs-read-chunk-size 128M" for the 128Mi default.
    assert parse_size("s", "128M") == 128 << 20


@pytest.mark.parametrize(("value", "text"), RCLONE_PRINTED_DURATIONS)
def test_durations_are_written_as_rclone_writes_them(value: float, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration("d", text) == value


# --- durations ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", 0.0),
        ("0s", 0.0),
        ("10", 10.0),  # bare number: seconds
        ("1.5", 1.5),
        ("1h0m0s", 3600.0),
        ("5m", 300.0),
        ("1.5h", 5400.0),
        ("1h30m", 5400.0),
        ("20ms", 0.02),
        ("300us", 0.0003),
        ("300\u00b5s", 0.0003),
        ("300\u03bcs", 0.0003),
        ("500ns", 5e-7),
        ("1d", 86400.0),
        ("2w", 14 * 86400.0),
        ("1M", 30 * 86400.0),
        ("1y", 365 * 86400.0),
        ("1d12h", 1.5 * 86400),
        (".5s", 0.5),
    ],
)
def test_duration(raw: str, expected: float) -> None:
    assert parse_duration("d", raw) == pytest.approx(expected)


def test_duration_off_is_infinite() -> None:
    assert parse_duration("d", "off") == DURATION_OFF
    assert math.isinf(DURATION_OFF)


@pytest.mark.parametrize("raw", ["", "5x", "-5s", "1h-5m", "h", "5 m", "1.2.3s", "5mm", "OFF"])
def test_duration_errors(raw: str) -> None:
    with pytest.raises(OptionError, match=r'^dir-cache-time: invalid duration ".*" \(use a'):
        parse_duration("dir-cache-time", raw)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0s"),
        (1.0, "1s"),
        (300.0, "5m0s"),
        (3600.0, "1h0m0s"),
        (5400.5, "1h30m0.5s"),
        (0.02, "20ms"),
        (0.0015, "1.5ms"),
        (3e-6, "3\u00b5s"),
        (5e-9, "5ns"),
        (DURATION_OFF, "off"),
        (86400.0, "24h0m0s"),
    ],
)
def test_format_duration_round_trips(value: float, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration("d", text) == pytest.approx(value)


# --- modes, integers, enums, lists ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0777", 0o777),
        ("777", 0o777),
        ("022", 0o022),
        ("2", 0o2),
        ("0o755", 0o755),
        ("7777", 0o7777),
    ],
)
def test_mode(raw: str, expected: int) -> None:
    assert parse_mode("umask", raw) == expected


@pytest.mark.parametrize("raw", ["", "8", "0x1ff", "rwx", "07777", "-1"])
def test_mode_errors(raw: str) -> None:
    with pytest.raises(OptionError, match=r"^umask: invalid octal mode .*0777"):
        parse_mode("umask", raw)


def test_format_mode() -> None:
    assert format_mode(0o777) == "0777"
    assert format_mode(0o22) == "0022"
    assert parse_mode("m", format_mode(0o640)) == 0o640


def test_int_and_uint32() -> None:
    assert parse_int("transfers", "4") == 4
    assert parse_int("transfers", "-3") == -3
    assert parse_uint32("uid", "0") == 0
    assert parse_uint32("uid", "4294967295") == 4294967295
    for raw in ["", "1.5", "four", "0x10"]:
        with pytest.raises(OptionError, match=r"^transfers: invalid integer"):
            parse_int("transfers", raw)
    for raw in ["-1", "4294967296", "x"]:
        with pytest.raises(OptionError, match=r"^uid: invalid value .*4294967295"):
            parse_uint32("uid", raw)


@pytest.mark.parametrize("raw", ["off", "OFF", "Minimal", "writes", "FULL"])
def test_cache_mode_any_case(raw: str) -> None:
    assert parse_cache_mode("vfs-cache-mode", raw) is CacheMode(raw.lower())


def test_cache_mode_error_lists_choices() -> None:
    with pytest.raises(OptionError, match=r"off\|minimal\|writes\|full"):
        parse_cache_mode("vfs-cache-mode", "some")


def test_string_list() -> None:
    assert parse_string_list("a,b, c,,") == ("a", "b", "c")
    assert parse_string_list("") == ()


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        (ValueType.BOOL, True),
        (ValueType.BOOL, False),
        (ValueType.TRISTATE, None),
        (ValueType.SIZE, 3 << 29),
        (ValueType.SIZE, UNLIMITED),
        (ValueType.DURATION, 0.02),
        (ValueType.MODE, 0o22),
        (ValueType.INT, 64),
        (ValueType.UINT32, 1000),
        (ValueType.STRING, "a b"),
        (ValueType.STRING_LIST, ("x", "y")),
        (ValueType.CACHE_MODE, CacheMode.WRITES),
    ],
)
def test_value_type_round_trip(type_: ValueType, value: object) -> None:
    assert type_.parse("o", type_.format(value)) == value  # type: ignore[arg-type]


def test_string_lists_quote_items_that_hold_commas() -> None:
    from domain.values import format_string_list, parse_string_list

    items = ("*.{jpg,png}", 'say "hi"', "plain")
    assert format_string_list(items) == '"*.{jpg,png}","say ""hi""",plain'
    assert parse_string_list(format_string_list(items)) == items
    assert parse_string_list("a, b,,c") == ("a", "b", "c")
    with pytest.raises(OptionError):
        parse_string_list('"open')
