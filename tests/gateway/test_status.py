"""The gateway's status file: its JSON layout (what `stedi gateway status --json` shows as the last
run), read back as the same typed snapshot, and a clear error for a file that is not one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.central import BoardState
from gateway.spool import Spool
from gateway.status import STATUS_FILE, BoardStatus, GatewayStatus, StatusError
from stedi_app.cli import app
from tests.gateway.util import rows

#: The file's layout, key by key in this order: scripts and dashboards read it.
GATEWAY_KEYS = [
    "gateway", "phase", "pid", "time", "lake", "ble", "readings", "readings_per_s", "duplicates", "held",
    "spool_depth", "spool_fill", "spool_cap", "open_batches", "customer_events", "uploaded_readings",
    "uploaded_objects", "last_upload_ms", "upload_lag_s", "upload_error", "error", "boards",
]
BOARD_KEYS = [
    "serial", "address", "connected", "boot_id", "battery_pct", "buffer_fill", "board_dropped", "clock_offset_ms",
    "sync_rtt_ms", "readings", "duplicates", "bad_frames", "stale_frames", "gaps", "resumes", "connects",
    "last_frame",
]


def _status(boards: list[BoardStatus]) -> GatewayStatus:
    return GatewayStatus(
        gateway="0123456789ab", phase="running", pid=4242, time=1_790_000_000_000, lake="/lake",
        ble="sim://127.0.0.1:9", readings=120, readings_per_s=19.8, duplicates=3, held=0, spool_depth=40,
        spool_fill=0.004, spool_cap=10_000, open_batches=1, customer_events=0, uploaded_readings=80,
        uploaded_objects=4, last_upload_ms=None, upload_lag_s=1.5, upload_error="SlowDown: try later", error=None,
        boards=boards,
    )


def test_status_file_layout_and_read_back(tmp_path: Path) -> None:
    live = BoardState("board-1", "AA:BB", connected=True, boot_id=7, battery_pct=90, buffer_fill=0.25,
                      readings=120, connects=2, last_frame=12.5)
    live._lateness.append(40)
    status = _status([live.snapshot()])
    status.write(tmp_path)

    text = (tmp_path / STATUS_FILE).read_text()
    data = json.loads(text)
    assert list(data) == GATEWAY_KEYS
    assert [list(b) for b in data["boards"]] == [BOARD_KEYS]  # the central's working memory stays out
    assert data["boards"][0]["serial"] == "board-1" and data["boards"][0]["buffer_fill"] == 0.25
    assert data["last_upload_ms"] is None and data["upload_error"] == "SlowDown: try later"
    assert text == json.dumps(data, indent=1)

    again = GatewayStatus.read(tmp_path)
    assert again == status and type(again.boards[0]) is BoardStatus


def test_a_board_snapshot_does_not_follow_the_live_state() -> None:
    live = BoardState("board-1", "AA:BB")
    snap = live.snapshot()
    live.readings += 10
    assert snap.readings == 0 and type(snap) is BoardStatus


@pytest.mark.parametrize("text", ["", "[]", '{"boards": []}', '{"gateway": "x"}',
                                  json.dumps({**json.loads(_status([]).to_json()), "extra": 1})])
def test_a_file_that_is_not_a_status_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / STATUS_FILE).write_text(text)
    with pytest.raises(StatusError):
        GatewayStatus.read(tmp_path)
    with pytest.raises(OSError):
        GatewayStatus.read(tmp_path / "nowhere")


def test_status_command_shows_the_last_run_as_written(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_readings=1000)
    spool.add_readings("board-1", 7, rows(0, 40))
    spool.close()
    status = _status([BoardState("board-1", "AA:BB", boot_id=7).snapshot()])
    status.write(tmp_path)
    result = CliRunner().invoke(app, ["gateway", "status", "--home", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["last_run"] == json.loads((tmp_path / STATUS_FILE).read_text())
    assert list(out["last_run"]) == GATEWAY_KEYS
    assert out["spool_cap"] == 10_000 and out["spool_fill"] == 0.004  # the last run's cap
    table = CliRunner().invoke(app, ["gateway", "status", "--home", str(tmp_path)]).output
    assert "running" in table and "pid 4242" in table and "SlowDown" in table
