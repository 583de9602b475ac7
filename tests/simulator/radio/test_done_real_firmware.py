"""Issue 4's done test: the REAL firmware (firmware/board/) flashed onto a virtual board with the
real mpremote; the board advertises through the radio; a bleak client using the simulator backend
connects, syncs time and receives readings whose decoded sequence numbers have no gaps.

The sensor is the VL53L0X driver of the firmware against the machine shim, so every distance
comes from the physics model of this board's serial number."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from bleak import BleakClient, BleakScanner

from simulator import physics
from simulator.bleak_backend import backend_kwargs
from simulator.board.server import VirtualBoard
from simulator.radio.server import RadioThread
from simulator.shims import compiled_shims
from tests.parts import REPO, MicroPython
from tests.simulator.board.mp import mpremote

FIRMWARE = REPO / "firmware" / "board"
SERIAL = "5e7d0c3f-0000-4000-8000-00000000abcd"


def _flash_args(built: Path, config: Path) -> list[str]:
    """One mpremote chain copying the built firmware (with our config.json) and resetting the board."""
    args: list[str] = []
    for entry in sorted(built.iterdir()):
        if entry.name == "config.json":
            continue
        if entry.is_dir():
            args += ["+", "cp", "-r", str(entry), ":"]
        else:
            args += ["+", "fs", "cp", str(entry), ":"]
    args += ["+", "fs", "cp", str(config), ":config.json", "+", "reset"]
    return args[1:]


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["esp32", "picow"])
def test_real_firmware_streams_gapless_readings_through_the_radio(
    micropython: MicroPython, tmp_path: Path, profile: str
) -> None:
    if not (FIRMWARE / "main.py").exists():
        pytest.fail(f"the project's board firmware is missing: no {FIRMWARE / 'main.py'}")
    from firmware.board import stedi_protocol as proto
    from firmware.build import build

    # As a user would: `stedi firmware build` (modules to .mpy), then flash with mpremote.
    built = build(tmp_path / "build").out

    # What `stedi firmware flash --board PROFILE --sensor vl53l0x --rate 20` writes: the board's
    # own wiring, checked against its port's rules; the virtual board enforces that port's.
    from firmware.deploy import make_config

    config = tmp_path / "config.json"
    template = json.loads((built / "config.json").read_text())
    config.write_text(json.dumps(make_config(template, SERIAL, "vl53l0x", 20, board=profile)))
    # The shims as .mpy, as a board's built-ins sit compactly in flash (see simulator/shims).
    compiled = compiled_shims(micropython.binary, cache=tmp_path / "shim-cache")
    assert compiled is not None
    with RadioThread(seed=11) as radio, VirtualBoard(
        tmp_path / "flash",
        heap="96k",
        radio=radio.hostport,
        board_id="trainer-1",
        micropython=micropython.binary,
        extra_path=(compiled,),
        profile=profile,
    ) as board:
        mpremote(board.url, *_flash_args(built, config), timeout=120)
        kw = backend_kwargs(radio.url)

        async def gateway() -> tuple[dict[str, object], list[tuple[int, int, int]], int, str]:
            found = await BleakScanner.discover(timeout=15, service_uuids=[proto.SERVICE_UUID], return_adv=True, **kw)
            assert len(found) == 1, (board.state, board.last_error)
            device, adv = next(iter(found.values()))
            assert adv.local_name == proto.device_name(SERIAL)
            readings: list[tuple[int, int, int]] = []
            bad_frames = 0
            boots: set[int] = set()
            async with BleakClient(device, **kw) as client:
                assert client.mtu_size == proto.MTU_PREFERRED or client.mtu_size > 23
                serial = (await client.read_gatt_char(proto.uuid16_str(proto.SERIAL_NUMBER_CHAR))).decode()
                status = proto.decode_status(await client.read_gatt_char(proto.STATUS_UUID))
                boot_id = int(status["boot_id"])  # type: ignore[call-overload]

                def on_batch(_c: object, data: bytearray) -> None:
                    nonlocal bad_frames
                    try:
                        frame_boot, _first, rows = proto.decode_batch(bytes(data))
                    except ValueError:
                        bad_frames += 1
                        return
                    boots.add(frame_boot)
                    readings.extend(rows)

                await client.start_notify(proto.READINGS_UUID, on_batch)
                synced_at = int(time.time() * 1000)
                await client.write_gatt_char(proto.CONTROL_UUID, proto.encode_time_sync(synced_at), response=True)
                # Everything held since boot comes first, then live readings (at 20 Hz, sent at
                # least every batch_ms): keep going for 4 s of live data.
                live_until = time.monotonic() + 4
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and (len(readings) < 80 or time.monotonic() < live_until):
                    await asyncio.sleep(0.2)
                    if readings:
                        await client.write_gatt_char(
                            proto.CONTROL_UUID, proto.encode_ack(readings[-1][0], boot_id), response=True
                        )
                # The status value is refreshed every status_ms (1 s): poll until it shows the sync
                # and the acknowledgements.
                for _ in range(30):
                    status = proto.decode_status(await client.read_gatt_char(proto.STATUS_UUID))
                    if status["clock_synced"] and int(status["fill"]) < 60:  # type: ignore[call-overload]
                        break
                    await asyncio.sleep(0.1)
            assert boots == {boot_id}  # no reboot while streaming
            return status, readings, bad_frames, serial

        status, readings, bad_frames, serial = asyncio.run(gateway())
        assert board.state == "main.py", board.last_error

        async def after_a_dropped_link(boot_id: int, expected: int) -> tuple[list[int], bool]:
            """Connected again, a fault drops the link; the gateway reconnects and resumes."""
            device = await BleakScanner.find_device_by_name(proto.device_name(SERIAL), timeout=10, **kw)
            assert device is not None
            seqs: list[int] = []
            dropped = asyncio.Event()

            def on_batch(_c: object, data: bytearray) -> None:
                seqs.extend(seq for seq, _t, _d in proto.decode_batch(bytes(data))[2])

            async def session(until: float) -> None:
                async with BleakClient(device, lambda _c: dropped.set(), **kw) as client:
                    await client.start_notify(proto.READINGS_UUID, on_batch)
                    # RESUME first: streaming starts with TIME_SYNC, from the resumed cursor.
                    await client.write_gatt_char(
                        proto.CONTROL_UUID, proto.encode_resume(expected if not seqs else seqs[-1] + 1, boot_id),
                        response=True,
                    )
                    await client.write_gatt_char(
                        proto.CONTROL_UUID, proto.encode_time_sync(int(time.time() * 1000)), response=True
                    )
                    while time.monotonic() < until and client.is_connected:
                        await asyncio.sleep(0.1)

            session_one = asyncio.create_task(session(time.monotonic() + 30))
            await asyncio.sleep(1.5)
            assert radio.drop_links("trainer-1") == 1  # both ends are told
            await asyncio.wait_for(dropped.wait(), 5)
            await session_one
            await session(time.monotonic() + 2.5)  # the board advertises again; resume
            return seqs, dropped.is_set()

        last = readings[-1][0]
        resumed, saw_drop = asyncio.run(after_a_dropped_link(int(status["boot_id"]), last + 1))  # type: ignore[call-overload]
        assert saw_drop
        assert board.state == "main.py", board.last_error

    # Across the dropped link: resumed exactly where the first session ended, nothing missing
    # (duplicates, which RESUME may not prevent for frames in flight, are kept once).
    assert resumed and resumed[0] == last + 1
    unique = sorted(set(resumed))
    assert unique == list(range(last + 1, last + 1 + len(unique)))
    assert len(unique) >= 40

    assert serial == SERIAL
    assert bad_frames == 0
    assert len(readings) >= 80, f"only {len(readings)} readings; board {board.state} {board.last_error!r}"
    seqs = [seq for seq, _t, _d in readings]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "sequence numbers have gaps or repeats"
    assert seqs[0] == 0  # the buffer held everything from boot until the clock was synced
    assert status["clock_synced"] and status["dropped"] == 0, repr(status)
    # status is refreshed once a second (20 readings at 20 Hz), so it may lag what arrived
    assert int(status["next_seq"]) >= seqs[-1] + 1 - 25 and int(status["fill"]) < 60  # type: ignore[call-overload]
    assert len(seqs) >= 80 + 60  # the backlog and live readings
    # The distances are the physics of this serial number's person (sensor errors are counted,
    # not recorded, so every reading is a real distance).
    seed = physics.seed_for_serial(SERIAL)
    distances = [d for _s, _t, d in readings]
    assert all(170 <= d <= 310 for d in distances)
    assert min(distances) >= physics.baseline_mm(seed) - 90
    times = [t for _s, t, _d in readings]
    assert times == sorted(times) and abs(times[-1] - int(time.time() * 1000)) < 30_000
