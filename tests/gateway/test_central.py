"""The central's frame handling: commit then acknowledge, bad frames counted and never stored,
gaps asked for again with RESUME (unless the board dropped them), repeats dropped."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

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


def _central(spool: Spool, tmp_path: Path, status_s: float = 5.0) -> Central:
    """A central serving the registered customer of SERIAL, its accelerometer a one-line replay."""
    Customers(spool).register(email="c@x.org", name="C", phone="1", birthday="1980-01-01", serial=SERIAL)
    replay = tmp_path / "a.jsonl"
    replay.write_text('{"t": 0, "x": 0, "y": 0, "z": 1}\n')
    return Central(Ingest(spool, ReplaySource(replay)), BleBackend("bleak"), status_s=status_s)


def frame(first: int, n: int) -> bytes:
    return proto.encode_batch(BOOT, first, [(s, T0 + 50 * s, 250) for s in range(first, first + n)])


async def written(link: FakeLink, write: tuple[int, int | None, int | None], timeout: float = 10.0) -> None:
    """Wait until the central has written ``write`` to the board: frames are handled in order, so
    every frame queued before the one that causes it has been handled too."""
    deadline = time.monotonic() + timeout
    while write not in link.writes:
        assert time.monotonic() < deadline, f"{write} not written within {timeout} s; written: {link.writes}"
        await asyncio.sleep(0.005)


def test_frames_are_committed_acknowledged_and_checked(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    central = _central(spool, tmp_path)
    state = BoardState(SERIAL, "AA", boot_id=BOOT)
    link = FakeLink()
    bad = bytearray(frame(10, 10))
    bad[20] ^= 0xFF  # corrupt a reading: the CRC no longer matches

    async def scenario() -> None:
        frames: asyncio.Queue[bytes] = asyncio.Queue()
        task = asyncio.create_task(central._commit_frames(link, state, frames))
        for data in (frame(0, 10), bytes(bad), b"\x01\x02", frame(20, 5), frame(0, 10), frame(10, 10)):
            await frames.put(data)
        await written(link, (proto.OP_ACK, 19, BOOT))  # the last of them acknowledged
        link.status = {"next_seq": 60, "fill": 20}  # the board holds 40..59: 30..39 were dropped by it
        await frames.put(frame(40, 5))
        await written(link, (proto.OP_ACK, 44, BOOT))
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


def test_full_spool_stops_acknowledging_and_asks_again_once_there_is_room(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_readings=15)
    central = _central(spool, tmp_path)
    state = BoardState(SERIAL, "AA", boot_id=BOOT)
    link = FakeLink()
    link.status = {"next_seq": 40, "fill": 40}  # the board still holds everything not acknowledged

    async def scenario() -> None:
        frames: asyncio.Queue[bytes] = asyncio.Queue()
        task = asyncio.create_task(central._commit_frames(link, state, frames))
        await frames.put(frame(0, 10))
        await frames.put(frame(10, 10))  # would exceed the cap: refused, not acknowledged
        await frames.put(frame(20, 10))  # a gap now: asked for again from 10
        await written(link, (proto.OP_RESUME, 10, BOOT))
        (batch,) = spool.cut_batches(max_count=100, max_age_s=0, force=True)
        spool.batch_uploaded(batch, objects=2)  # the uploader made room
        await frames.put(frame(10, 10))  # the board sends 10.. again after the RESUME
        await written(link, (proto.OP_ACK, 19, BOOT))
        task.cancel()

    asyncio.run(scenario())
    assert link.writes == [(proto.OP_ACK, 9, BOOT), (proto.OP_RESUME, 10, BOOT), (proto.OP_ACK, 19, BOOT)]
    assert spool.watermark(SERIAL, BOOT) == 19 and central.ingest.counters.refused_frames == 1


def test_a_lost_first_frame_of_a_boot_is_asked_for_again_not_skipped(tmp_path: Path) -> None:
    # The first frame of a boot lost in the air: with nothing spooled yet for the boot, the next
    # frame (10..19) used to be committed and acknowledged, and the board then let 0..9 go.
    spool = Spool(tmp_path)
    central = _central(spool, tmp_path)
    state = BoardState(SERIAL, "AA", boot_id=BOOT)
    link = FakeLink()
    link.status = {"next_seq": 20, "fill": 20}  # the board holds 0..19

    async def scenario() -> None:
        frames: asyncio.Queue[bytes] = asyncio.Queue()
        task = asyncio.create_task(central._commit_frames(link, state, frames))
        await frames.put(frame(10, 10))
        await frames.put(frame(0, 10))
        await frames.put(frame(10, 10))
        await written(link, (proto.OP_ACK, 19, BOOT))
        # Another boot whose board really dropped 0..29 before any gateway heard it.
        link.status = {"next_seq": 40, "fill": 10}
        state.boot_id = BOOT + 1
        await frames.put(proto.encode_batch(BOOT + 1, 30, [(s, T0 + 50 * s, 250) for s in range(30, 40)]))
        await written(link, (proto.OP_ACK, 39, BOOT + 1))
        task.cancel()

    asyncio.run(scenario())
    assert link.writes == [
        (proto.OP_RESUME, 0, BOOT),
        (proto.OP_ACK, 9, BOOT),
        (proto.OP_ACK, 19, BOOT),
        (proto.OP_ACK, 39, BOOT + 1),  # dropped by the board: accepted, the gap counted
    ]
    assert spool.watermark(SERIAL, BOOT) == 19 and state.readings == 30 and state.gaps == 1


def test_a_board_on_a_new_boot_ends_the_session(tmp_path: Path) -> None:
    # A board that renewed its boot (its seqs ran out) keeps the link: the status poll notices,
    # and the session ends so that the reconnect starts over with the new boot.
    spool = Spool(tmp_path)
    central = _central(spool, tmp_path, status_s=0.01)
    state = BoardState(SERIAL, "AA", boot_id=BOOT + 1)
    link = FakeLink()  # its status says boot BOOT

    async def scenario() -> None:
        await asyncio.wait_for(central._keep_status(link, state), 5)

    with pytest.raises(ConnectionError, match=f"boot {BOOT}, not {BOOT + 1}"):
        asyncio.run(scenario())
