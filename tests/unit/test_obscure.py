"""rclone's password obscuring: compatible both ways with rclone 1.60.1."""

import subprocess

import pytest

from adapters.storage.obscure import obscure, reveal
from domain.errors import OptionError

# Made with Debian's rclone 1.60.1, `rclone obscure -- <plain>`. The empty one
# only proves the format (a 16-byte IV, unpadded URL-safe base64): it decodes to
# "" under any key. The others prove the key and the cipher; the 40-byte one runs
# the stream over more than two AES blocks, the last has base64's own characters.
RCLONE_VECTORS = {
    "hVugm__kJZKkzO1lHnBSKRVfrWhhAQ": "secret",
    "C3q6r1BT3W4Ap7tX8lk1J0mmwUaBRJ8ZajWc4g": "pässwörd 1",
    "i7EFb7UR84XofZkDB8RY4A": "",
    "r6LFW7b8naN3Z-K5ZXCPxr_iREd4umzj9k4Bksm8pNf2kbPVmWWzG09SzYRrF03TMW0N6vOo38o": "a" * 40,
    "J32JuazKFCix_0SoSNHYA7fSK90Mr1w": "€🔑",
    "E7S5JJ_I6z7QpPBOlXxzpd5ZvFig4mGcMXk": "=+/ -x:,'\"",
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


def _rclone(*args: str) -> str:
    # "--": an obscured value starts with "-" once in 64 (random IV), and a
    # plain text may too; neither is a flag.
    out = subprocess.run(["rclone", *args], capture_output=True, text=True, check=True)
    return out.stdout.rstrip("\n")


LIVE_PLAINS = ["secret", "pässwörd 1", "a" * 40, "-dash", "€🔑"]


@pytest.mark.parametrize("plain", LIVE_PLAINS)
def test_rclone_reveals_what_we_obscured(plain: str) -> None:
    # Several random IVs per text: the obscured form varies with each.
    for _ in range(4):
        assert _rclone("reveal", "--", obscure(plain)) == plain


@pytest.mark.parametrize("plain", LIVE_PLAINS)
def test_we_reveal_what_the_installed_rclone_obscures(plain: str) -> None:
    hidden = _rclone("obscure", "--", plain)
    assert hidden != plain
    assert reveal(hidden) == plain
