"""The bumble link itself: what the hub adds to bumble's LocalLink (airtime budget, a killed
process seen as a supervision timeout by its peer) and the controllers' 251-byte data length."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable

from bleak import BleakClient, BleakScanner
from bumble import gatt, hci
from bumble.device import Device, Peer

from simulator.bleak_backend import backend_kwargs
from simulator.bleak_backend.link import CentralHost
from simulator.radio.air import Air, AirController
from simulator.radio.board_host import ACL_DATA_LENGTH
from simulator.radio.faults import Faults
from simulator.radio.server import RadioThread
from tests.simulator.radio.conftest import Board

NOTIFY_UUID = "0000aaab-0000-1000-8000-00805f9b34fb"
COUNTER = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"


async def _notifications_per_second(faults: Faults, count: int = 60) -> tuple[float, list[int]]:
    """Two bumble devices on one Air: the peripheral notifies ``count`` 240-byte values as fast
    as its host takes them; the rate at which they reach the central."""
    air = Air(faults, random.Random(1), lambda _c: set())
    devices = []
    for i, name in enumerate(("peripheral", "central")):
        controller = AirController(name, link=air)
        controller.le_acl_data_packet_length = ACL_DATA_LENGTH
        address = hci.Address(f"F0:00:00:00:00:0{i + 1}", hci.Address.RANDOM_DEVICE_ADDRESS)
        devices.append(Device.with_hci(name, address, controller, controller))
    peripheral, central = devices
    char = gatt.Characteristic(NOTIFY_UUID, gatt.Characteristic.Properties.NOTIFY,
                               gatt.Characteristic.Permissions.READABLE, b"")
    peripheral.add_services([gatt.Service("0000aaaa-0000-1000-8000-00805f9b34fb", [char])])
    for d in devices:
        await d.power_on()
    await peripheral.start_advertising(auto_restart=False)
    connection = await central.connect(peripheral.random_address, timeout=5)
    peer = Peer(connection)
    await peer.request_mtu(247)
    await peer.discover_services()
    (service,) = peer.get_services_by_uuid(gatt.UUID("0000aaaa-0000-1000-8000-00805f9b34fb"))
    await service.discover_characteristics()
    got: list[int] = []
    done = asyncio.Event()

    def on_value(value: bytes) -> None:
        got.append(value[0])
        if len(got) == count:
            done.set()

    await service.characteristics[0].subscribe(on_value)
    (p_conn,) = peripheral.connections.values()
    started = time.perf_counter()
    for i in range(count):
        await peripheral.notify_subscriber(p_conn, char, bytes([i % 256]) + bytes(239))
    await asyncio.wait_for(done.wait(), 30)
    elapsed = time.perf_counter() - started
    return count / elapsed, got


def test_airtime_budget_limits_notifications_per_connection_interval() -> None:
    unlimited, got = asyncio.run(_notifications_per_second(Faults()))
    assert got == list(range(60))
    budget = Faults(conn_interval_ms=30.0, packets_per_event=2)  # 2 packets per 30 ms: 66.7/s
    limited, got = asyncio.run(_notifications_per_second(budget))
    assert got == list(range(60))  # in order, none lost: the budget is delay, not loss
    assert 45 < limited < 80, limited
    assert unlimited > 5 * limited, (unlimited, limited)


def test_controllers_carry_a_240_byte_notification_in_one_data_packet(radio: RadioThread) -> None:
    async def central() -> int:
        host = await CentralHost.open(radio.hostport, "probe")
        try:
            # HCI LE Read Buffer Size (Core Spec Vol 4 Part E 7.8.2): what the controller takes
            response = await host.device.host.send_sync_command(hci.HCI_LE_Read_Buffer_Size_Command())
            return int(response.le_acl_data_packet_length)
        finally:
            await host.close()

    assert asyncio.run(central()) == 251


def test_a_killed_board_is_a_supervision_timeout_to_the_gateway(
    radio: RadioThread, start_board: Callable[..., Board]
) -> None:
    board = start_board("board-A")
    kw = backend_kwargs(radio.url)

    async def central() -> float:
        device = await BleakScanner.find_device_by_name("PERIPH", timeout=5, **kw)
        gone = asyncio.Event()
        client = BleakClient(device, lambda _c: gone.set(), **kw)
        await client.connect()
        t = time.monotonic()
        os.kill(board.proc.pid, signal.SIGKILL)  # the board loses power
        await asyncio.wait_for(gone.wait(), 5)
        assert not client.is_connected
        return time.monotonic() - t

    assert asyncio.run(central()) < 2.0
    assert radio.status()["links"] == []


def test_a_killed_gateway_is_a_disconnect_to_the_board(radio: RadioThread, start_board: Callable[..., Board]) -> None:
    board = start_board("board-A")
    kw = backend_kwargs(radio.url)

    async def central() -> None:
        device = await BleakScanner.find_device_by_name("PERIPH", timeout=5, **kw)
        client = BleakClient(device, **kw)
        await client.connect()
        board.wait_for("IRQ connect")
        # The gateway process dies: its socket to the hub closes, nobody says goodbye over BLE.
        host = client._backend._host  # type: ignore[attr-defined]
        host._writer.transport.abort()

    asyncio.run(central())
    board.wait_for("IRQ disconnect", timeout=5)
    assert radio.status()["links"] == []
    # ... and the board advertises again, so another gateway can connect
    assert asyncio.run(BleakScanner.find_device_by_name("PERIPH", timeout=5, **kw)) is not None


def test_the_boards_stack_refuses_notifications_beyond_the_hubs_airtime_budget(
    radio: RadioThread, start_board: Callable[..., Board]
) -> None:
    """The board's notify back-pressure (NimBLE's ENOMEM here) follows the link's budget: at one
    packet per 100 ms the test peripheral's 20 Hz counter cannot all go out."""
    radio.set_faults(conn_interval_ms=100, packets_per_event=1)
    start_board("board-A")  # says hello after the budget is set: its welcome carries it
    # READY is printed before the hub has answered the hello; its advertising frame comes after the
    # hello on the same socket, so once the hub advertises for it the welcome (with the budget) is out.
    deadline = time.monotonic() + 10
    while not any(n["role"] == "peripheral" and n["advertising"] for n in radio.status()["nodes"]):
        assert time.monotonic() < deadline, radio.status()
        time.sleep(0.02)
    # The link itself unlimited again, so discovery is quick; the board keeps the budget it was given.
    radio.set_faults(conn_interval_ms=0)
    kw = backend_kwargs(radio.url)

    async def central() -> list[int]:
        device = await BleakScanner.find_device_by_name("PERIPH", timeout=5, **kw)
        got: list[int] = []
        async with BleakClient(device, **kw) as client:
            await client.start_notify(COUNTER, lambda _c, d: got.append(int.from_bytes(d[:4], "little")))
            await asyncio.sleep(3.0)
        return got

    got = asyncio.run(central())
    assert got == sorted(got) and len(got) >= 10
    sent_span = got[-1] - got[0] + 1
    assert len(got) < 0.8 * sent_span, (len(got), sent_span)  # refused ones are missing
