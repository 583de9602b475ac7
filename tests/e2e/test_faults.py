"""The fault suite, fast cases: one run per kind of fault with a fixed seed (``tests.harness.faults``).

Each run starts the radio, virtual boards with the real firmware and the gateway as its own
process, injects its fault, stops the boards, catches up and reads landing back from the lake:
every reading a board made is there exactly once, by (serial, boot, seq).  The long runs are
``benchmarks/soak.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.spool import Spool
from gateway.uploader import Uploader
from stedi.lake import FolderLake, LakeObject
from stedi.settings import JsonLinesFormatter
from tests.gateway.util import rows
from tests.harness.faults import BootCount, FaultPlan, Figures, account, phase_at_end, run_faults, schedule
from tests.parts import MicroPython

A = "aaaaaaaa-0000-4000-8000-000000000001"


# ---- the harness's own logic, on hand-made data ----------------------------------------

@contextlib.contextmanager
def _gateway_log() -> Iterator[list[str]]:
    """The gateway's log lines written in the block, as the harness gets them: JSON lines
    (STEDI_LOG_FORMAT=json) with the spool's and the uploader's debug lines on."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLinesFormatter())
    gateway = logging.getLogger("gateway")
    saved = gateway.level
    gateway.addHandler(handler)
    gateway.setLevel(logging.DEBUG)
    lines: list[str] = []
    try:
        yield lines
    finally:
        gateway.removeHandler(handler)
        gateway.setLevel(saved)
        lines.extend(line + "\n" for line in out.getvalue().splitlines())


class _LakeAway(FolderLake):
    def put(self, key: str, data: bytes, *, sse: str | None = None, kms_key_id: str | None = None) -> LakeObject:
        raise ConnectionError("the lake is away")


def test_kill_phase_is_read_from_the_gateways_log_events(tmp_path: Path) -> None:
    # The real gateway writes them: one spool commit, a put that is stored, a put that fails.
    spool = Spool(tmp_path / "home")
    with _gateway_log() as commit:
        spool.add_readings("x", 1, rows(0, 40))
    objects = [("step_trainer/landing/x/1/0-39.jsonl", b"{}\n")]
    with _gateway_log() as stored:
        Uploader(spool, FolderLake(tmp_path / "lake")).send(objects)
    with _gateway_log() as failed, pytest.raises(ConnectionError):
        Uploader(spool, _LakeAway(tmp_path / "away")).send(objects)
    begin, done = commit
    put, put_done = stored
    put_again, put_failed = failed

    assert phase_at_end("") == "between"
    assert phase_at_end(begin) == "commit"
    assert phase_at_end(begin + done) == "between"
    assert phase_at_end(begin + done + put) == "upload"
    assert phase_at_end(put + begin) == "commit+upload"
    assert phase_at_end(put + put_failed + begin + done) == "between"
    assert phase_at_end(put + put_done) == "between"
    assert phase_at_end(put + put + put_done) == "between"  # a put tried again, then stored
    assert phase_at_end(put + put_done + put_again) == "upload"
    # Lines that are not JSON (other output, the line a kill cut short) are skipped...
    assert phase_at_end("Traceback (most recent call last):\n" + begin + begin[:30]) == "commit"
    # ...and the wording of a message is not read: only the events' fields are.
    human = ("12:00:00 DEBUG   gateway.spool: spool commit begins: x boot 1, 40 readings\n"
             "12:00:01 DEBUG   gateway.uploader: put begins: step_trainer/landing/x/1/0-39.jsonl\n")
    assert phase_at_end(human) == "between"
    said_otherwise = json.dumps({**json.loads(begin), "message": "all quiet"}) + "\n"
    assert phase_at_end(said_otherwise) == "commit"


def test_schedule_is_seeded_and_kills_stay_inside_the_run() -> None:
    plan = FaultPlan(seconds=60, boards=3, seed=7, kill_every_s=5, outages=[(10, 20)], resets=[30],
                     clock_jumps=[(40, -60)])
    first, again = schedule(plan), schedule(FaultPlan(**{**plan.__dict__}))
    assert first == again
    kills = [f.at for f in first if f.kind == "kill"]
    assert 7 <= len(kills) <= 24 and max(kills) < 58
    assert [f.kind for f in first if f.kind != "kill"] == ["outage", "reset", "clock"]
    assert schedule(FaultPlan(seconds=60, seed=8, kill_every_s=5)) != schedule(FaultPlan(seconds=60, seed=7, kill_every_s=5))


def test_readings_that_die_with_a_reset_board_are_counted_apart_from_lost() -> None:
    old = BootCount(A, 5, 10, unacked_from=6)  # seq 6..9 were in RAM when the board reset
    new = BootCount(A, 9, 3)
    rows = [{"serial": A, "boot": 5, "seq": s, "t": s} for s in (0, 1, 2, 4, 5, 7)]  # 3 lost, 6/8/9 died
    rows += [{"serial": A, "boot": 9, "seq": s, "t": s} for s in (0, 1, 2, 2)]  # seq 2 twice
    rows += [{"serial": A, "boot": 9, "seq": 3, "t": 0}]  # past the board's last reading
    f = Figures()
    account([old, new], rows, 0, f)
    assert (f.produced, f.lost, f.lost_on_board_reset, f.duplicated, f.unexpected) == (13, 1, 3, 1, 1)
    assert not f.exact
    f = Figures()
    rows = [{"serial": A, "boot": 5, "seq": s, "t": s} for s in range(8)]  # 8 and 9 died with the RAM
    rows += [{"serial": A, "boot": 9, "seq": s, "t": s} for s in range(3)]
    account([old, new], rows, 0, f)
    assert (f.lost, f.lost_on_board_reset, f.duplicated) == (0, 2, 0) and f.exact


# ---- one run per fault ----------------------------------------------------------------

def _exact(f: Figures) -> None:
    assert f.produced > 0
    assert (f.lost, f.duplicated, f.unexpected, f.unreadable, f.board_dropped) == (0, 0, 0, 0, 0), f.as_json()
    assert f.landed == f.produced - f.lost_on_board_reset, f.as_json()
    assert f.gateway_exits == []  # every gateway run ended by the harness's own signal


@pytest.mark.slow
def test_radio_loss_and_random_disconnects(micropython: MicroPython, tmp_path: Path) -> None:
    # 0.3 disconnects a second per link: whether a draw falls while a link is up depends on timing,
    # and at 0.1/s two links drew none in 15 s about once in 20 runs (the test then proved nothing).
    f = run_faults(FaultPlan(seconds=15, boards=2, seed=11, s3=False, loss=0.1, disconnect_per_s=0.3), keep=tmp_path)
    _exact(f)
    # On a BLE link a lost packet is retransmitted (delay); readings are lost only with a dropped
    # link, and the gateway's RESUME recovers them: the accounting above stays exact.
    assert f.packets_lost > 0 and f.disconnects_injected > 0, f.as_json()


@pytest.mark.slow
def test_sigkill_while_receiving_committing_and_uploading(micropython: MicroPython, tmp_path: Path) -> None:
    # Commits and puts are slowed so that random kill times land in them (see docs/faults.md).
    f = run_faults(FaultPlan(seconds=20, boards=2, seed=12, s3=True, kill_every_s=4, commit_delay_s=0.3,
                             upload_delay_s=0.3), keep=tmp_path)
    _exact(f)
    assert len(f.kills) >= 3, f.kills
    assert any(p != "between" for p in f.kills), f.kills  # at least one inside a commit or a put


@pytest.mark.slow
def test_s3_outage_then_back(micropython: MicroPython, tmp_path: Path) -> None:
    f = run_faults(FaultPlan(seconds=20, boards=2, seed=13, s3=True, outages=[(3.0, 12.0)]), keep=tmp_path)
    _exact(f)
    assert f.outages_s == [12.0]
    logs = "".join(p.read_text() for p in tmp_path.glob("gateway-*.log"))
    assert "retry" in logs  # the gateway did see the outage and retried


@pytest.mark.slow
def test_board_reset_mid_stream(micropython: MicroPython, tmp_path: Path) -> None:
    f = run_faults(FaultPlan(seconds=16, boards=2, seed=14, s3=False, resets=[8.0]), keep=tmp_path)
    _exact(f)
    reset = [b for b in f.boots if b["reset"]]
    assert len(reset) == 1 and len(f.boots) == 3
    old = reset[0]
    assert old["landed"] > 0 and old["produced"] == old["landed"] + old["lost_on_board_reset"]
    assert [b for b in f.boots if b["serial"] == old["serial"] and not b["reset"]][0]["landed"] > 0  # new boot


@pytest.mark.slow
def test_phone_clock_jump_back_to_the_curated_zone(micropython: MicroPython, tmp_path: Path) -> None:
    f = run_faults(FaultPlan(seconds=16, boards=2, seed=15, s3=False, clock_jumps=[(8.0, -60.0)], pipeline=True),
                   keep=tmp_path)
    _exact(f)
    assert f.curated is not None and f.curated["exact"], f.curated
    assert f.curated["step_trainer_trusted"]["rows"] > 0 and f.curated["excluded_by_consent"] > 0
    # The board followed the phone's clock: readings after the jump are stamped a minute earlier.
    steps = [json.loads(line) for p in (tmp_path / "lake" / "step_trainer" / "landing").rglob("*.jsonl")
             for line in p.read_text().splitlines()]
    for serial in {r["serialNumber"] for r in steps}:
        mine = sorted((r["seq"], r["sensorReadingTime"]) for r in steps if r["serialNumber"] == serial)
        steps_back = [b[1] - a[1] for a, b in zip(mine, mine[1:], strict=False) if b[1] < a[1]]
        assert steps_back and min(steps_back) < -50_000, (serial, steps_back)
