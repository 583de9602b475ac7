"""Radio faults with a real MicroPython peripheral and the bleak backend: a dropped link is a
disconnect on both sides; loss; out of range; latency; control at run time; the CLI."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError

from simulator.bleak_backend import backend_kwargs
from simulator.radio.server import Radio, RadioThread
from tests.parts import LocalServer, free_port
from tests.simulator.radio.conftest import Board

COUNTER = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
ECHO = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"


def _control(port: int, frame: dict[str, object]) -> dict[str, object]:
    """What a person does with nc: one control frame, one answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(json.dumps(frame).encode() + b"\n")
        answer = s.makefile("rb").readline()
    result: dict[str, object] = json.loads(answer)
    return result


async def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("how", ["api", "control frame", "random disconnect"])
def test_dropped_link_is_a_disconnect_on_both_sides(
    how: str, radio: RadioThread, start_board: Callable[..., Board]
) -> None:
    board = start_board("board-A")
    kw = backend_kwargs(radio.url)

    async def central() -> None:
        device = await BleakScanner.find_device_by_name("PERIPH", timeout=5, **kw)
        assert device is not None
        gone: list[bool] = []
        client = BleakClient(device, lambda c: gone.append(True), **kw)
        await client.connect()
        assert client.is_connected
        if how == "api":
            assert radio.drop_links("board-A") == 1
        elif how == "control frame":
            assert _control(radio.port, {"t": "drop", "target": device.address}) == {"t": "drop_ok", "dropped": 1}
        else:
            radio.set_faults(disconnect_per_s=0.9)
        await _wait(lambda: bool(gone))
        assert not client.is_connected and gone == [True]
        with pytest.raises(BleakError):
            await client.read_gatt_char(COUNTER)
        await client.disconnect()  # harmless after a drop
        assert gone == [True]

    asyncio.run(central())
    board.wait_for("IRQ disconnect")
    board.assert_no_errors()


def test_loss_delays_data_in_order_and_drops_adverts(radio: RadioThread, start_board: Callable[..., Board]) -> None:
    """A real link layer retransmits an unacknowledged data packet at the next connection event:
    under loss every notification still arrives, in order, later; adverts are simply missed."""
    board = start_board("board-A")
    kw = backend_kwargs(radio.url)

    async def central() -> tuple[list[int], list[int], int]:
        device = await BleakScanner.find_device_by_name("PERIPH", timeout=5, **kw)
        clean: list[int] = []
        lossy: list[int] = []
        sink = clean
        async with BleakClient(device, **kw) as client:
            await client.start_notify(COUNTER, lambda _c, d: sink.append(struct.unpack("<I", d)[0]))
            await asyncio.sleep(0.5)
            radio.set_faults(loss=0.5)
            sink = lossy
            await asyncio.sleep(1.5)
            for _ in range(5):
                await client.write_gatt_char(ECHO, b"x", response=True)
            retransmitted = int(radio.status()["stats"]["lost"])
        # while the link is up, no advert is sent; now half of them are missed
        adverts_before = int(radio.status()["stats"]["adv"])
        assert await BleakScanner.find_device_by_name("PERIPH", timeout=5, **kw) is not None
        await asyncio.sleep(1.0)
        status = radio.status()["stats"]
        radio.set_faults(loss=0.0)
        assert int(status["lost"]) > retransmitted and int(status["adv"]) > adverts_before
        return clean, lossy, retransmitted

    clean, lossy, retransmitted = asyncio.run(central())
    assert clean == list(range(clean[0], clean[0] + len(clean)))
    assert len(lossy) >= 5 and lossy == list(range(lossy[0], lossy[0] + len(lossy)))  # none lost, none reordered
    assert retransmitted > 0
    assert len(board.wait_for("IRQ write", count=5)) == 5


def test_out_of_range_drops_links_hides_adverts_and_refuses_connections(
    radio: RadioThread, start_board: Callable[..., Board]
) -> None:
    board = start_board("board-A")
    kw = backend_kwargs(radio.url)

    async def central() -> None:
        device = await BleakScanner.find_device_by_name("PERIPH", timeout=5, **kw)
        assert device is not None
        gone: list[bool] = []
        client = BleakClient(device, lambda c: gone.append(True), **kw)
        await client.connect()
        radio.set_faults(out_of_range=["board-A"])
        await _wait(lambda: bool(gone))
        assert await BleakScanner.find_device_by_name("PERIPH", timeout=0.5, **kw) is None
        with pytest.raises(BleakError, match="out of range"):
            await BleakClient(device, timeout=0.6, **kw).connect()
        radio.set_faults(out_of_range=[])
        assert await BleakScanner.find_device_by_name("PERIPH", timeout=5, **kw) is not None

    asyncio.run(central())
    board.wait_for("IRQ disconnect")


def test_latency_delays_every_hop(radio: RadioThread, start_board: Callable[..., Board]) -> None:
    start_board("board-A")
    kw = backend_kwargs(radio.url)

    async def central() -> float:
        device = await BleakScanner.find_device_by_name("PERIPH", timeout=5, **kw)
        echoes: asyncio.Queue[bytes] = asyncio.Queue()
        async with BleakClient(device, **kw) as client:
            await client.start_notify(ECHO, lambda _c, d: echoes.put_nowait(bytes(d)))
            radio.set_faults(latency_ms=150)
            t = time.monotonic()
            await client.write_gatt_char(ECHO, b"slow", response=False)
            assert await asyncio.wait_for(echoes.get(), 5) == b"slow"
            return time.monotonic() - t

    assert asyncio.run(central()) >= 0.3  # central -> board and board -> central


def test_faults_are_seeded_and_validated() -> None:
    def pattern(seed: int) -> list[bool]:
        r = Radio(seed=seed)
        r.faults.update({"loss": 0.5})
        return [r.air.lost() for _ in range(64)]

    assert pattern(3) == pattern(3)
    assert pattern(3) != pattern(4)
    with pytest.raises(ValueError):
        Radio().set_faults(loss=1.5)
    with pytest.raises(ValueError):
        Radio().set_faults(colour="blue")
    with pytest.raises(ValueError, match="7.5"):
        Radio().set_faults(conn_interval_ms=5)  # below the shortest BLE connection interval


def test_cli_radio_with_flags_and_control_frames() -> None:
    port = free_port()
    stedi = [sys.executable, "-c", "from stedi_app.cli import main; main()"]
    server = LocalServer([*stedi, "sim", "radio", "--listen", f"127.0.0.1:{port}", "--loss", "0.25", "--seed", "5"], port)
    try:
        status = _control(port, {"t": "status"})
        assert status["t"] == "status" and status["faults"]["loss"] == 0.25  # type: ignore[index]
        changed = _control(port, {"t": "faults", "latency_ms": 20, "out_of_range": ["board-9"]})
        assert changed["faults"]["latency_ms"] == 20.0  # type: ignore[index]
        assert changed["faults"]["out_of_range"] == ["board-9"]  # type: ignore[index]
        assert _control(port, {"t": "faults", "loss": 7})["t"] == "error"
        assert _control(port, {"t": "nonsense"})["t"] == "error"
        sent = subprocess.run(
            [*stedi, "sim", "radio", "--listen", f"127.0.0.1:{port}", "--send", '{"t":"drop"}', "--send", '{"t":"status"}'],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert sent.returncode == 0, sent.stderr
        drop, status = (json.loads(line) for line in sent.stdout.splitlines())
        assert drop == {"t": "drop_ok", "dropped": 0} and status["faults"]["latency_ms"] == 20.0
    finally:
        server.stop()
    assert server.proc.returncode == 0  # SIGTERM closes the radio cleanly
