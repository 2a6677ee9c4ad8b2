"""rclone's password obscuring: compatible both ways with rclone 1.60.1."""

import subprocess

import pytest

from adapters.storage.obscure import obscure, reveal
from domain.errors import OptionError

# Made with Debian's rclone 1.60.1: `rclone obscure secret`, `rclone obscure 'pässwörd 1'`.
RCLONE_VECTORS = {
    "hVugm__kJZKkzO1lHnBSKRVfrWhhAQ": "secret",
    "C3q6r1BT3W4Ap7tX8lk1J0mmwUaBRJ8ZajWc4g": "pässwörd 1",
    "i7EFb7UR84XofZkDB8RY4A": "",
}


@pytest.mark.parametrize(("obscured", "plain"), RCLONE_VECTORS.items())
def test_reveals_what_rclone_obscured(obscured: str, plain: str) -> None:
    assert reveal(obscured) == plain


@pytest.mark.parametrize("plain", ["", "x", "secret", "pässwörd 1", "a" * 100, "€🔑"])
def test_round_trip(plain: str) -> None:
    hidden = obscure(plain)
    assert len(plain) < 6 or plain not in hidden  # shorter ones may occur by chance
    assert "=" not in hidden and "+" not in hidden and "/" not in hidden
    assert reveal(hidden) == plain


def test_random_iv_makes_each_obscuring_different() -> None:
    assert obscure("secret") != obscure("secret")


@pytest.mark.parametrize("bad", ["", "short", "not base64!!", "hVugm__kJZKk"])
def test_refuses_values_that_are_not_obscured(bad: str) -> None:
    with pytest.raises(OptionError, match=r"sftp pass: value is not an obscured password"):
        reveal(bad, "sftp pass")


def test_error_does_not_echo_the_value() -> None:
    with pytest.raises(OptionError) as excinfo:
        reveal("my-plain-password")
    assert "my-plain-password" not in str(excinfo.value)


def test_rclone_reveals_what_we_obscured() -> None:
    for plain in ("secret", "pässwörd 1"):
        out = subprocess.run(
            ["rclone", "reveal", obscure(plain)], capture_output=True, text=True, check=True
        )
        assert out.stdout.rstrip("\n") == plain
