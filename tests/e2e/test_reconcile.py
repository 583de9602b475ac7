"""The demo's accounting on hand-made data: each kind of fault shows in its own figure, so
the end-to-end test's zeros mean something."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from stedi.lake import FolderLake
from stedi_app.demo_reconcile import BoardCount, reconcile, reconcile_lake
from stedi_app.demo_rig import DemoError, demo_serial
from stedi_app.demo_run import MARKER, demo_customers, prepare_lake_dir

A, B = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"


def test_exact_when_every_reading_landed_once() -> None:
    boards = [BoardCount(A, 7, 3), BoardCount(B, 9, 2)]
    r = reconcile(boards, [(A, 7, 0), (A, 7, 1), (A, 7, 2), (B, 9, 1), (B, 9, 0)])
    assert (r.produced, r.landed, r.lost, r.duplicated, r.unexpected) == (5, 5, 0, 0, 0)
    assert r.exact
    assert r.per_board[A] == {"boot": 7, "produced": 3, "landed": 3, "lost": 0, "duplicated": 0, "board_dropped": 0}


def test_lost_duplicated_and_unexpected_readings_are_counted_apart() -> None:
    boards = [BoardCount(A, 7, 4)]
    landed = [(A, 7, 0), (A, 7, 0), (A, 7, 0), (A, 7, 2),  # seq 1 and 3 lost, seq 0 twice more
              (A, 6, 0),  # another boot of the board: no board reported making it
              (A, 7, 9)]  # beyond the board's last sequence number
    r = reconcile(boards, landed)
    assert (r.produced, r.lost, r.duplicated, r.unexpected) == (4, 2, 2, 2)
    assert r.landed == 6 and not r.exact
    assert r.per_board[A]["lost"] == 2 and r.per_board[A]["duplicated"] == 2


def test_reads_landing_back_from_the_lake_including_gzip_and_bad_lines(tmp_path: Path) -> None:
    lake = FolderLake(tmp_path)
    rows = [{"sensorReadingTime": 1, "serialNumber": A, "distanceFromObject": 5, "bootId": 7, "seq": s}
            for s in range(3)]
    lake.put(f"step_trainer/landing/{A}/7/0-1.jsonl", "\n".join(json.dumps(r) for r in rows[:2]).encode() + b"\n")
    lake.put(f"step_trainer/landing/{A}/7/2-2.json.gz", gzip.compress(json.dumps(rows[2]).encode()))
    lake.put(f"step_trainer/landing/{A}/7/bad.jsonl", b'{"serialNumber": "x"}\n\nnot json\n')
    lake.put(f"step_trainer/landing/{A}/7/ignored.txt", b"not a landing file\n")
    r = reconcile_lake(lake, [BoardCount(A, 7, 3)])
    assert (r.produced, r.lost, r.duplicated, r.unreadable) == (3, 0, 0, 2)
    assert not r.exact  # unreadable landing lines are not waved through


def test_lake_folder_is_cleared_only_when_it_is_a_demo_lake(tmp_path: Path) -> None:
    mine = prepare_lake_dir(tmp_path / "lake")
    (mine / "step_trainer").mkdir()
    assert prepare_lake_dir(mine) == mine and not (mine / "step_trainer").exists()  # re-run: cleared
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(DemoError, match="not a demo lake"):
        prepare_lake_dir(other)
    assert (other / "holiday.jpg").exists() and not (other / MARKER).exists()


def test_customers_mix_consent_and_boards_have_distinct_air_names() -> None:
    people = demo_customers(7, seed=3)
    assert {c.consent for c in people[:3]} == {"yes", "no", "late"}
    assert len({c.serial[-4:] for c in people}) == 7  # STEDI-xxxx names differ
    assert demo_serial(3, 1) == people[0].serial != demo_serial(4, 1)
