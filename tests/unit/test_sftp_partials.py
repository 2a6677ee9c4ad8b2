"""The record of the temporary files SFTP uploads create, and the idle timeout's
keepalive schedule."""

from pathlib import Path

from adapters.storage.sftp_connect import keepalive_interval
from adapters.storage.sftp_partials import PartialFiles

TEMP = "/srv/data/dir/.report.pdf.0a1b2c3d.partial"
OTHER = "/srv/data/.notes.txt.deadbeef.partial"


def test_an_upload_that_ends_cleanly_leaves_nothing(tmp_path: Path) -> None:
    partials = PartialFiles(str(tmp_path / "journal"))
    partials.created(TEMP)
    assert partials.leftovers() == []  # in flight: its upload owns it
    assert len(list((tmp_path / "journal").iterdir())) == 1
    partials.gone(TEMP)
    assert partials.leftovers() == []
    assert list((tmp_path / "journal").iterdir()) == []


def test_one_left_behind_is_a_leftover_until_gone() -> None:
    partials = PartialFiles()
    partials.created(TEMP)
    partials.created(OTHER)
    partials.left_behind(TEMP)
    assert partials.leftovers() == [TEMP]
    partials.gone(TEMP)
    assert partials.leftovers() == []


def test_a_killed_process_leaves_its_uploads_to_the_next(tmp_path: Path) -> None:
    journal = str(tmp_path / "journal")
    killed = PartialFiles(journal)
    killed.created(TEMP)
    killed.created(OTHER)
    killed.gone(OTHER)
    # The next worker of the volume reads what the killed one never saw go.
    assert PartialFiles(journal).leftovers() == [TEMP]


def test_a_record_naming_anything_but_a_temporary_file_is_ignored(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    (journal / "a").write_text("/srv/data/important.txt")
    (journal / "b").write_text("/srv/data/.visible.partial")
    (journal / "c").write_bytes(b"\xff\xfe")
    assert PartialFiles(str(journal)).leftovers() == ["/srv/data/.visible.partial"]


def test_the_idle_timeout_is_three_keepalive_intervals() -> None:
    # asyncssh gives up after two unanswered keepalives, at the third interval.
    assert keepalive_interval(300.0) == 100.0
    assert keepalive_interval(6.0) == 2.0
    assert keepalive_interval(None) == 0.0  # no timeout: no keepalives
