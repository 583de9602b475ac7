"""The spool: durable across reopen, dedup of repeated (serial, boot, seq), cap policy, batch boundaries."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.spool import Spool
from tests.gateway.util import rows


def test_committed_readings_and_resume_points_survive_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    result = spool.add_readings("board-1", 7, rows(0, 40))
    assert (result.acked_seq, result.accepted, result.refused) == (39, 40, False)
    spool.add_readings("board-1", 8, rows(0, 5))
    spool.close()

    again = Spool(tmp_path)
    assert again.pending == 45
    assert again.watermark("board-1", 7) == 39
    assert again.watermark("board-1", 8) == 4
    assert again.watermark("board-2", 7) is None
    assert sorted(again.watermarks()) == [("board-1", 7, 39), ("board-1", 8, 4)]


def test_repeated_readings_are_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.add_readings("b", 1, rows(0, 10))
    again = spool.add_readings("b", 1, rows(5, 10))  # 5..9 repeated, 10..14 new
    assert (again.accepted, again.duplicates, again.acked_seq) == (5, 5, 14)
    same = spool.add_readings("b", 1, rows(0, 15))
    assert (same.accepted, same.duplicates, same.acked_seq) == (0, 15, 14)
    assert spool.pending == 15
    # Another boot of the same board starts its own sequence.
    assert spool.add_readings("b", 2, rows(0, 3)).accepted == 3


def test_full_spool_refuses_whole_frames_and_acknowledges_nothing_new(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_readings=25)
    assert spool.add_readings("b", 1, rows(0, 20)).accepted == 20
    refused = spool.add_readings("b", 1, rows(20, 10))
    assert refused.refused and refused.accepted == 0 and refused.acked_seq == 19
    assert spool.pending == 20 and spool.stats().fill == 20 / 25
    assert spool.add_readings("b", 1, rows(20, 5)).acked_seq == 24  # still fits exactly


def test_a_new_board_refused_by_a_full_spool_is_spooled_whole_later(tmp_path: Path) -> None:
    # The refusal rolls back the new board's row; its id must not outlive that rollback, or its
    # later readings are kept under an id no row names and the spool fails after a restart.
    spool = Spool(tmp_path, max_readings=25)
    spool.add_readings("full", 1, rows(0, 20))
    assert spool.add_readings("late", 1, rows(0, 10)).refused
    spool.cut_batches(max_count=100, max_age_s=0, force=True)
    spool.batch_uploaded(spool.open_batches()[0], objects=1)  # room again
    assert spool.add_readings("late", 1, rows(0, 10)).accepted == 10
    spool.close()

    again = Spool(tmp_path)
    assert again.watermark("late", 1) == 9
    cut = again.cut_batches(max_count=100, max_age_s=0, force=True)
    assert [(b.serial, b.count) for b in cut] == [("late", 10)]
    assert [(b.serial, b.count) for b in again.open_batches()] == [("late", 10)]


def test_batch_boundaries_are_durable_and_never_recut(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.add_readings("b", 1, rows(0, 25))
    cut = spool.cut_batches(max_count=10, max_age_s=3600, force=False)
    assert [(b.first_seq, b.last_seq, b.count) for b in cut] == [(0, 9, 10), (10, 19, 10)]
    spool.add_readings("b", 1, rows(25, 5))
    spool.close()

    again = Spool(tmp_path)
    assert [(b.first_seq, b.last_seq) for b in again.open_batches()] == [(0, 9), (10, 19)]
    # Unbatched readings that waited through a restart are cut at once, after the old batches.
    cut = again.cut_batches(max_count=100, max_age_s=3600)
    assert [(b.first_seq, b.last_seq, b.count) for b in cut] == [(20, 29, 10)]
    batch = again.open_batches()[0]
    assert [r[0] for r in again.batch_rows(batch)] == list(range(10))
    again.batch_uploaded(batch, objects=2)
    assert again.pending == 20
    assert again.stats().uploaded_readings == 10


def test_held_readings_are_kept_but_never_batched(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.add_readings("b", 1, rows(0, 10), held=True)
    assert spool.pending == 0 and spool.stats().held == 10
    assert spool.cut_batches(max_count=5, max_age_s=0, force=True) == []
    assert spool.add_readings("b", 1, rows(0, 10)).duplicates == 10


def test_a_transaction_that_fails_writes_nothing_and_leaves_the_spool_usable(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(RuntimeError), spool.transaction():
        spool.set_meta("half", "done")
        raise RuntimeError("power cut")
    assert spool.get_meta("half") is None and not spool.db.in_transaction
    assert spool.add_readings("b", 1, rows(0, 5)).accepted == 5  # the next BEGIN works


def test_a_failed_customer_upload_bookkeeping_keeps_the_record_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path)
    spool.add_customer_event('{"email":"ann@example.com"}')
    (event_id, _line), = spool.customer_events()

    def disk_full(key: str, value: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(spool, "_set", disk_full)
    with pytest.raises(OSError):
        spool.customer_event_uploaded(event_id)
    monkeypatch.undo()
    # Rolled back as a whole: the record still waits, the upload is not counted, no transaction is left open.
    assert not spool.db.in_transaction
    assert [e for e, _ in spool.customer_events()] == [event_id]
    assert spool.stats().uploaded_objects == 0
    spool.customer_event_uploaded(event_id)
    assert spool.customer_events() == [] and spool.stats().uploaded_objects == 1


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 20)), min_size=1, max_size=30))
def test_resent_frames_in_any_overlap_keep_each_reading_once(frames: list[tuple[int, int]]) -> None:
    """A board resends from its oldest unacknowledged reading; whatever overlaps arrive,
    the spool holds each sequence number once and its watermark is the highest seen."""
    with tempfile.TemporaryDirectory() as home:
        spool = Spool(home)
        top = -1
        for first, n in frames:
            start = min(first, top + 1)  # a board never skips ahead of what it sent (no gaps here)
            result = spool.add_readings("b", 1, rows(start, n))
            top = max(top, start + n - 1)
            assert result.acked_seq == top
        held = [r[0] for r in spool.db.execute("SELECT seq FROM readings ORDER BY seq")]
        assert held == list(range(top + 1))
        spool.close()
