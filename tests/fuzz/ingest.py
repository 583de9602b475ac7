"""The gateway's own frame path (``Central._commit_frames``: decode, check, commit to the spool,
acknowledge) driven with a stream of frames, against a stand-in for the BLE link."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from firmware.board import stedi_protocol as proto
from gateway.accel import ReplaySource
from gateway.ble import BleBackend
from gateway.central import BoardState, Central
from gateway.customers import Customers
from gateway.ingest import Ingest
from gateway.spool import Spool

SERIAL = "5e1f0a2b-0c3d-4e5f-8a9b-fuzzfuzzfuzz"


class FakeLink:
    """A connected board as the central sees it: control writes are recorded (and must decode),
    status says the board still holds everything from ``oldest`` on, so a gap is asked for again."""

    def __init__(self, boot: int, oldest: int = 0) -> None:
        self.boot = boot
        self.oldest = oldest
        self.writes: list[tuple[int, int | None, int | None]] = []

    async def write_gatt_char(self, uuid: str, data: bytes, response: bool = False) -> None:
        assert uuid == proto.CONTROL_UUID
        self.writes.append(proto.decode_control(data))

    async def read_gatt_char(self, uuid: str) -> bytes:
        assert uuid == proto.STATUS_UUID
        return proto.encode_status(
            firmware_version=(1, 0, 0), boot_id=self.boot, next_seq=proto.SEQ_MASK, fill=proto.SEQ_MASK - self.oldest,
            capacity=6000, dropped=0, sensor_errors=0, malformed_writes=0, battery_pct=90, rate_hz=20,
            clock_synced=True, sampling=True,
        )


@dataclass
class StreamResult:
    state: BoardState
    writes: list[tuple[int, int | None, int | None]]
    stored: set[tuple[int, int, int]]  # (seq, time, distance) of every reading in the spool
    counters_readings: int


def run_stream(frames: list[bytes], boot: int, oldest: int = 0) -> StreamResult:
    """Feed ``frames`` through the central's commit task; raises whatever the task raised."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        # OFF: durability is not under test here, and fsyncs would make each example slow.
        spool = Spool(home, synchronous="OFF")
        try:
            Customers(spool).register(email="fuzz@example.com", name="F", phone="1", birthday="1980-01-01",
                                      serial=SERIAL)
            replay = home / "accel.jsonl"
            replay.write_text('{"t": 0, "x": 0, "y": 0, "z": 1}\n')
            central = Central(Ingest(spool, ReplaySource(replay)), BleBackend("bleak"))
            state = BoardState(SERIAL, "AA:BB", boot_id=boot)
            link = FakeLink(boot, oldest)

            async def scenario() -> None:
                queue: asyncio.Queue[bytes] = asyncio.Queue()
                for f in frames:
                    queue.put_nowait(f)
                task = asyncio.create_task(central._commit_frames(link, state, queue))
                # The stand-in link never suspends, so an empty queue plus a few turns of the
                # loop means every frame was handled.
                while not queue.empty() and not task.done():
                    await asyncio.sleep(0)
                for _ in range(3):
                    await asyncio.sleep(0)
                if task.done():
                    task.result()  # re-raises what ended the task: a crash of the frame path
                    raise AssertionError("the frame task ended on its own")
                task.cancel()

            asyncio.run(scenario())
            stored: set[tuple[int, int, int]] = set()
            for batch in spool.cut_batches(max_count=10**6, max_age_s=0, force=True):
                stored.update((r[0], r[1], r[2]) for r in spool.batch_rows(batch))
            return StreamResult(state, link.writes, stored, central.ingest.counters.readings)
        finally:
            spool.close()


def check_stream(frames: list[bytes], boot: int) -> tuple[int, int]:
    """A stream through the gateway's frame path; returns (frames, frames refused).

    Every frame the decoder refuses is counted in ``bad_frames``, every well-formed frame of
    another boot in ``stale_frames``; only readings of well-formed frames of this boot reach
    the spool, and every control write the gateway sends is a valid one (FakeLink decodes it).
    """
    from tests.fuzz.frames import reference_decode

    decoded = [reference_decode(f) for f in frames]
    refused = sum(d is None for d in decoded)
    stale = sum(d is not None and d[0] != boot for d in decoded)
    result = run_stream(frames, boot)
    assert result.state.bad_frames == refused, (result.state.bad_frames, refused)
    assert result.state.stale_frames == stale, (result.state.stale_frames, stale)
    allowed = {r for d in decoded if d is not None and d[0] == boot for r in d[2]}
    assert result.stored <= allowed, sorted(result.stored - allowed)[:5]
    assert result.counters_readings == len(result.stored)
    for op, _value, write_boot in result.writes:
        assert op in (proto.OP_ACK, proto.OP_RESUME) and write_boot == boot
    return len(frames), refused
