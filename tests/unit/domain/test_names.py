import pytest

from domain.errors import InvalidVolumeName
from domain.names import MAX_NAME_LENGTH, validate_volume_name


@pytest.mark.parametrize(
    "name", ["a", "0", "data", "my-vol_1.2", "A.b-c_d", "x" * MAX_NAME_LENGTH, "v.1", "a-"]
)
def test_good_names_are_returned_unchanged(name: str) -> None:
    assert validate_volume_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "../../etcx",
        "..",
        ".",
        "a/b",
        "/abs",
        ".hidden",
        "-x",
        "_x",
        "a..b",
        "a b",
        "a\0b",
        "a\nb",
        "caf\u00e9",
        "a\\b",
        "x" * (MAX_NAME_LENGTH + 1),
    ],
)
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidVolumeName):
        validate_volume_name(name)


def test_empty_name_is_refused() -> None:
    with pytest.raises(InvalidVolumeName, match="empty"):
        validate_volume_name("")


def test_message_says_what_is_allowed() -> None:
    with pytest.raises(InvalidVolumeName) as info:
        validate_volume_name("../../etcx")
    message = str(info.value)
    assert "'../../etcx'" in message
    assert "start with a letter or digit" in message
    assert '".."' in message
