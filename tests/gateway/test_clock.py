"""The gateway's wall clock: the offset-file clock follows its file; a jump of the phone's clock
re-syncs a connected board at once (not at the next periodic re-sync); bad settings are refused."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from firmware.board import stedi_protocol as proto
from gateway.accel import ReplaySource
from gateway.ble import BleBackend
from gateway.central import BoardState, Central
from gateway.clock import ClockError, OffsetFileClock, SystemClock, open_clock
from gateway.config import ConfigError, load
from gateway.ingest import Ingest
from gateway.spool import Spool
from tests.gateway.test_central import BOOT, FakeLink


def test_offset_file_clock_follows_its_file(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    clock = OffsetFileClock(path)
    assert abs(clock.now_ms() - SystemClock().now_ms()) < 1000  # no file: offset 0
    path.write_text("-3600000\n")
    assert abs(clock.now_ms() - (SystemClock().now_ms() - 3_600_000)) < 1000
    path.write_text("not a number")
    assert clock.offset_ms == -3_600_000 and abs(clock.now_ms() - (SystemClock().now_ms() - 3_600_000)) < 1000
    path.write_text("")
    assert abs(clock.now_ms() - SystemClock().now_ms()) < 1000


def test_clock_settings_are_checked(tmp_path: Path) -> None:
    assert open_clock("system").name == "system"
    assert isinstance(open_clock(f"offset-file:{tmp_path / 'x'}"), OffsetFileClock)
    with pytest.raises(ClockError):
        open_clock("ntp")
    (tmp_path / "gateway.toml").write_text('clock = "offset-file:"\n')
    with pytest.raises(ConfigError, match="clock"):
        load(tmp_path)
    (tmp_path / "gateway.toml").write_text("spool_commit_delay_s = -1\n")
    with pytest.raises(ConfigError, match="spool_commit_delay_s"):
        load(tmp_path)


class StatusLink(FakeLink):
    async def read_gatt_char(self, uuid: str) -> bytes:
        return await super().read_gatt_char(proto.STATUS_UUID)


def test_a_jump_of_the_phone_clock_resyncs_the_board_at_once(tmp_path: Path) -> None:
    offset = tmp_path / "offset"
    replay = tmp_path / "a.jsonl"
    replay.write_text('{"t": 0, "x": 0, "y": 0, "z": 1}\n')
    spool = Spool(tmp_path)
    central = Central(Ingest(spool, ReplaySource(replay)), BleBackend("bleak"), status_s=0.05, resync_s=600,
                      clock=OffsetFileClock(offset))
    link = StatusLink()
    state = BoardState("serial-c", "AA", boot_id=BOOT)

    async def scenario() -> list[int]:
        task = asyncio.create_task(central._keep_status(link, state))
        await asyncio.sleep(0.3)
        quiet = [w for w in link.writes if w[0] == proto.OP_TIME_SYNC]
        offset.write_text("-3600000\n")
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert quiet == []  # no re-sync while the clock runs evenly
        return [value for op, value, _boot in link.writes if op == proto.OP_TIME_SYNC]

    syncs = asyncio.run(scenario())
    spool.close()
    assert len(syncs) == 1  # one re-sync, with the jumped clock
    assert abs(syncs[0] - (time.time() * 1000 - 3_600_000)) < 5_000
