import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.fingerprint import Fingerprint
from domain.remote_entry import RemoteEntry

ENTRY = RemoteEntry(name="f", is_dir=False, size=1234, mtime=1700000000.25)


def test_slow_parts_dropped_only_when_fast() -> None:
    full = Fingerprint.of(ENTRY, fast=False, hash="abc")
    assert full == Fingerprint(1234, 1700000000.25, "abc")
    # Default: the hash is slow (sftp, local), the modtime is not.
    assert Fingerprint.of(ENTRY, fast=True, hash="abc") == Fingerprint(1234, 1700000000.25, None)
    # s3-like: modtime slow, hash cheap.
    s3 = Fingerprint.of(ENTRY, fast=True, hash="abc", mtime_is_slow=True, hash_is_slow=False)
    assert s3 == Fingerprint(1234, None, "abc")
    assert Fingerprint.of(ENTRY, fast=False, mtime_is_slow=True).mtime == ENTRY.mtime


def test_string_form() -> None:
    assert Fingerprint(10, 1.5, "ff").to_str() == "10,1.5,ff"
    assert Fingerprint(10, None, None).to_str() == "10,,"
    assert Fingerprint.from_str("10,,ab,cd") == Fingerprint(10, None, "ab,cd")
    assert Fingerprint(1, 2.0, "").hash is None


@pytest.mark.parametrize("bad", ["", "10", "10,1", "x,1,", "10,now,", "10,nan,", "10,inf,h"])
def test_from_str_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        Fingerprint.from_str(bad)


fingerprints = st.builds(
    Fingerprint,
    size=st.integers(-1, 2**63),
    mtime=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    hash=st.one_of(st.none(), st.text(min_size=1)),
)


@given(fingerprints)
def test_round_trip(fp: Fingerprint) -> None:
    assert Fingerprint.from_str(fp.to_str()) == fp


def test_same_remote_compares_shared_parts() -> None:
    fp = Fingerprint(10, 5.0, "aa")
    assert fp.same_remote(Fingerprint(10, 5.0, "AA"))
    assert not fp.same_remote(Fingerprint(11, 5.0, "aa"))
    assert not fp.same_remote(Fingerprint(10, 6.0, "aa"))
    assert not fp.same_remote(Fingerprint(10, 5.0, "bb"))
    # A part one side lacks is not held against it (e.g. the fast flag changed).
    assert fp.same_remote(Fingerprint(10, None, "aa"))
    assert fp.same_remote(Fingerprint(10, 5.0, None))
    assert not Fingerprint(10, None, None).same_remote(Fingerprint(9, None, None))


@given(fingerprints, fingerprints)
def test_same_remote_is_symmetric_and_reflexive(a: Fingerprint, b: Fingerprint) -> None:
    assert a.same_remote(a)
    assert a.same_remote(b) == b.same_remote(a)
