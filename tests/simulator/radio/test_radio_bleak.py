"""A peripheral of the tests' own under the real MicroPython with the shims, advertising through
a real radio, and bleak's public API with the simulator backend on the other side."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError

from simulator.bleak_backend import SimClient, SimScanner, backend_kwargs
from simulator.radio.server import RadioThread
from tests.simulator.radio.conftest import Board

SVC = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
COUNTER = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
ECHO = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
MODEL = "00002a24-0000-1000-8000-00805f9b34fb"


def test_scan_connect_read_write_notify(radio: RadioThread, start_board: Callable[..., Board]) -> None:
    board = start_board("board-A")
    kw = backend_kwargs(radio.url)

    async def central() -> dict[str, object]:
        found = await BleakScanner.discover(timeout=1.2, service_uuids=[SVC], return_adv=True, **kw)
        assert len(found) == 1
        device, adv = next(iter(found.values()))
        assert adv.local_name == "PERIPH" and SVC in adv.service_uuids and adv.rssi < 0
        by_name = await BleakScanner.find_device_by_name("PERIPH", timeout=5, **kw)
        assert by_name is not None and by_name.address == device.address
        assert await BleakScanner.find_device_by_name("NOBODY", timeout=0.3, **kw) is None

        disconnected: list[str] = []
        counter: list[int] = []
        echoes: asyncio.Queue[bytes] = asyncio.Queue()
        async with BleakClient(device, lambda c: disconnected.append(c.address), **kw) as client:
            assert client.is_connected and client.name == "PERIPH"
            assert client.mtu_size == 185  # min(central's 517, board's config(mtu=185))
            assert [c.uuid for c in client.services.get_service(SVC).characteristics] == [COUNTER, ECHO, MODEL]
            assert "notify" in client.services.get_characteristic(COUNTER).properties
            assert await client.read_gatt_char(MODEL) == b"virtual-model-1"
            await client.start_notify(COUNTER, lambda _c, d: counter.append(struct.unpack("<I", d)[0]))
            await client.start_notify(ECHO, lambda _c, d: echoes.put_nowait(bytes(d)))
            t = time.monotonic()
            await client.write_gatt_char(ECHO, b"hello", response=True)
            assert await asyncio.wait_for(echoes.get(), 2) == b"hello"
            round_trip = time.monotonic() - t
            await client.write_gatt_char(ECHO, b"quiet", response=False)
            assert await asyncio.wait_for(echoes.get(), 2) == b"quiet"
            await client.write_gatt_char(ECHO, b"big", response=True)
            assert await asyncio.wait_for(echoes.get(), 2) == bytes(range(182))  # MTU - 3
            await client.write_gatt_char(ECHO, b"ind", response=True)
            assert await asyncio.wait_for(echoes.get(), 2) == b"indicated"
            await asyncio.sleep(0.4)
            await client.stop_notify(COUNTER)
            stopped_at = len(counter)
            await asyncio.sleep(0.2)
            assert len(counter) == stopped_at
            # the local value the board wrote is what a read returns
            value = struct.unpack("<I", await client.read_gatt_char(COUNTER))[0]
            assert value >= counter[-1]
        assert disconnected == [device.address]
        return {"counter": counter, "round_trip": round_trip}

    result = asyncio.run(central())
    counter = result["counter"]
    assert isinstance(counter, list) and len(counter) >= 5
    assert counter == list(range(counter[0], counter[0] + len(counter)))  # no notification lost
    assert isinstance(result["round_trip"], float) and result["round_trip"] < 0.3
    board.wait_for("IRQ disconnect")
    assert any(x.startswith("IRQ mtu 1 185") for x in board.lines)
    assert board.wait_for("IRQ indicate_done") == ["IRQ indicate_done 1 6 0"]  # conn, handle, status
    writes = board.wait_for("IRQ write", count=3)
    assert "b'hello'" in writes[0] and "b'quiet'" in writes[1]
    board.assert_no_errors()


def test_backend_kwargs_serve_both_scanner_and_client(radio: RadioThread) -> None:
    kw = backend_kwargs(radio.url)
    assert BleakScanner(**kw)._backend.__class__ is SimScanner
    assert BleakClient("C0:FF:EE:00:00:01", **kw)._backend.__class__ is SimClient
    with pytest.raises(ValueError):
        backend_kwargs("127.0.0.1:9000")


def test_connect_to_nobody_fails_clearly(radio: RadioThread) -> None:
    async def central() -> None:
        client = BleakClient("C0:FF:EE:00:00:01", timeout=0.8, **backend_kwargs(radio.url))
        with pytest.raises(BleakError, match="no peripheral"):
            await client.connect()
        assert not client.is_connected

    asyncio.run(central())


def test_unreachable_radio_is_a_bleak_error() -> None:
    async def central() -> None:
        with pytest.raises(BleakError, match="unreachable"):
            await BleakScanner.discover(timeout=0.2, **backend_kwargs("sim://127.0.0.1:1"))

    asyncio.run(central())


def test_two_boards_and_a_board_that_reconnects(radio: RadioThread, start_board: Callable[..., Board]) -> None:
    a = start_board("board-A")
    b = start_board("board-B")
    kw = backend_kwargs(radio.url)

    async def central() -> None:
        found = await BleakScanner.discover(timeout=1.2, **kw)
        assert len({d.address for d in found}) == 2
        device = found[0]
        for _ in range(2):  # the board re-advertises after a disconnect, so connect twice
            async with BleakClient(device, **kw) as client:
                assert await client.read_gatt_char(MODEL) == b"virtual-model-1"

    asyncio.run(central())
    assert len([x for x in a.lines + b.lines if x.startswith("IRQ connect")]) == 2
    a.assert_no_errors()
    b.assert_no_errors()


BUSY_SCHEDULER = """
# A board program that keeps micropython.schedule's 4-entry queue busy with its own callbacks
# while writes arrive: the shim must still deliver every IRQ, in order, one at a time.
import bluetooth, micropython, time
ble = bluetooth.BLE()
ble.active(True)
((h,),) = ble.gatts_register_services(((bluetooth.UUID(0xFFF0), ((bluetooth.UUID(0xFFF1), bluetooth.FLAG_WRITE),)),))
ble.gatts_set_buffer(h, 8)
seen = []
busy = [0, 0]
def irq(event, data):
    if event == 3:
        seen.append(ble.gatts_read(data[1]))
ble.irq(irq)
def mine(_):
    busy[0] += 1
ble.gap_advertise(100000, b"\\x02\\x01\\x06\\x05\\x09BUSY")
print("READY")
t0 = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), t0) < 6000 and len(seen) < 60:
    s = micropython.schedule
    try:  # straight-line calls (no branch in between runs the queue) fill it up
        s(mine, None); s(mine, None); s(mine, None); s(mine, None); s(mine, None)
    except RuntimeError:
        busy[1] += 1  # queue full: exactly the pressure wanted
    time.sleep_ms(1)
print("SEEN", len(seen), seen == [b"%d" % i for i in range(len(seen))], busy[0] > 100, busy[1] > 0)
"""


def test_irqs_delivered_while_the_program_fills_the_schedule_queue(
    radio: RadioThread, start_board: Callable[..., Board], tmp_path: Path
) -> None:
    script = tmp_path / "busy.py"
    script.write_text(BUSY_SCHEDULER)
    board = start_board("busy", script=script)
    kw = backend_kwargs(radio.url)

    async def central() -> None:
        device = await BleakScanner.find_device_by_name("BUSY", timeout=5, **kw)
        async with BleakClient(device, **kw) as client:
            for i in range(60):
                await client.write_gatt_char("0000fff1-0000-1000-8000-00805f9b34fb", b"%d" % i, response=True)

    asyncio.run(central())
    assert board.wait_for("SEEN", timeout=10) == ["SEEN 60 True True True"]
    board.assert_no_errors()
