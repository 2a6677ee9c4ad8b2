"""crypt's cipher pieces on their own (rclone interoperability itself is checked
against rclone in tests/integration/test_storage_crypt.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.storage.crypt import base32768
from adapters.storage.crypt.cipher import NameCipher, NameError_, NameSettings, derive_keys

_, NAME_KEY, TWEAK = derive_keys("", "")  # an empty password: all-zero keys, as in rclone
NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"),
    min_size=1,
    max_size=60,
)


@given(st.binary(max_size=200))
def test_base32768_round_trips(data: bytes) -> None:
    assert base32768.decode(base32768.encode(data)) == data


def test_base32768_refuses_foreign_text() -> None:
    with pytest.raises(ValueError):
        base32768.decode("abc")


@pytest.mark.parametrize(
    "settings",
    [
        NameSettings(),
        NameSettings(encoding="base64"),
        NameSettings(encoding="base32768"),
        NameSettings(mode="obfuscate"),
        NameSettings(mode="off"),
    ],
)
@given(name=NAMES)
def test_names_round_trip(settings: NameSettings, name: str) -> None:
    cipher = NameCipher(NAME_KEY, TWEAK, settings)
    encrypted = cipher.encrypt_name(name, is_file=True)
    assert cipher.decrypt_name(encrypted, is_file=True) == name


def test_names_of_another_key_do_not_decrypt() -> None:
    _, other_key, other_tweak = derive_keys("another", "")
    mine = NameCipher(NAME_KEY, TWEAK, NameSettings())
    theirs = NameCipher(other_key, other_tweak, NameSettings())
    failures = 0
    for index in range(50):
        try:
            mine.decrypt_name(theirs.encrypt_name(f"file {index}", is_file=True), is_file=True)
        except NameError_:
            failures += 1
    assert failures >= 45  # a wrong key passes the padding check by chance, rarely
