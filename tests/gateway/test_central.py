"""The central's frame handling: commit then acknowledge, bad frames counted and never stored,
gaps asked for again with RESUME (unless the board dropped them), repeats dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path

from firmware.board import stedi_protocol as proto
from gateway.accel import ReplaySource
from gateway.ble import BleBackend
from gateway.central import BoardState, Central
from gateway.customers import Customers
from gateway.ingest import Ingest
from gateway.spool import Spool

SERIAL = "serial-c"
BOOT = 321
T0 = 1_790_000_000_000


class FakeLink:
    """Stands in for a connected BleakClient: records control writes, serves a status value."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, int | None, int | None]] = []
        self.status = {"next_seq": 0, "fill": 0}

    async def write_gatt_char(self, uuid: str, data: bytes, response: bool = False) -> None:
        assert uuid == proto.CONTROL_UUID
        self.writes.append(proto.decode_control(data))

    async def read_gatt_char(self, uuid: str) -> bytes:
        assert uuid == proto.STATUS_UUID
        return proto.encode_status(
            firmware_version=(1, 0, 0), boot_id=BOOT, next_seq=self.status["next_seq"], fill=self.status["fill"],
            capacity=6000, dropped=0, sensor_errors=0, malformed_writes=0, battery_pct=90, rate_hz=20,
            clock_synced=True, sampling=True,
        )


def frame(first: int, n: int) -> bytes:
    return proto.encode_batch(BOOT, first, [(s, T0 + 50 * s, 250) for s in range(first, first + n)])


def test_frames_are_committed_acknowledged_and_checked(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    Customers(spool).register(email="c@x.org", name="C", phone="1", birthday="1980-01-01", serial=SERIAL)
    replay = tmp_path / "a.jsonl"
    replay.write_text('{"t": 0, "x": 0, "y": 0, "z": 1}\n')
    central = Central(Ingest(spool, ReplaySource(replay)), BleBackend("bleak"))
    state = BoardState(SERIAL, "AA", boot_id=BOOT)
    link = FakeLink()
    bad = bytearray(frame(10, 10))
    bad[20] ^= 0xFF  # corrupt a reading: the CRC no longer matches

    async def scenario() -> None:
        frames: asyncio.Queue[bytes] = asyncio.Queue()
        task = asyncio.create_task(central._commit_frames(link, state, frames))
        for data in (frame(0, 10), bytes(bad), b"\x01\x02", frame(20, 5), frame(0, 10), frame(10, 10)):
            await frames.put(data)
        await asyncio.sleep(0.2)
        link.status = {"next_seq": 60, "fill": 20}  # the board holds 40..59: 30..39 were dropped by it
        await frames.put(frame(40, 5))
        await asyncio.sleep(0.2)
        task.cancel()

    asyncio.run(scenario())
    assert state.bad_frames == 2  # bad CRC, too short
    assert link.writes == [
        (proto.OP_ACK, 9, BOOT),  # after 0..9 were committed
        (proto.OP_RESUME, 10, BOOT),  # frame 20.. after a gap: ask for 10.. again, do not store it
        (proto.OP_ACK, 9, BOOT),  # repeated 0..9: nothing new, acknowledged again
        (proto.OP_ACK, 19, BOOT),  # 10..19 arrived
        (proto.OP_ACK, 44, BOOT),  # the board no longer holds 20..39 (dropped): accepted, gap counted
    ]
    assert state.gaps == 1 and state.readings == 25 and state.duplicates == 10
    assert spool.watermark(SERIAL, BOOT) == 44 and spool.pending == 25
