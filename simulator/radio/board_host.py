"""A board's BLE host: a bumble peripheral ``Device`` driven by the board's ``bluetooth`` shim.

MicroPython cannot run bumble, so the host of a virtual board runs here, in the hub, on its own
virtual controller; the shim (simulator/shims/bluetooth.py) keeps MicroPython's API and sends
what the firmware calls as JSON lines, and gets back what its IRQ handler is told
(docs/simulator-radio.md, "Board protocol").  Everything between this host and a central is
bumble's: ATT PDUs, the MTU exchange, CCCD writes, fragmentation into LE data packets.

The shim numbers handles as its port does (NimBLE, or BTstack's table); bumble numbers its own
(after its GAP and GATT services).  The firmware only ever sees the shim's handles; this host
maps between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bumble import gatt, hci
from bumble.controller import Controller
from bumble.device import AdvertisingType, Connection, Device

from simulator.radio.air import AirController
from simulator.radio.protocol import DEFAULT_MTU, MAX_MTU, Frame, from_hex, to_hex

log = logging.getLogger(__name__)

#: LE data packet length of every virtual controller: 251 bytes, the LE Data Length Extension
#: maximum (Core Spec Vol 6 Part B 4.5.10), so a 240-byte notification is one link-layer packet.
ACL_DATA_LENGTH = 251
#: How long a central's read waits for the shim's answer (the ATT transaction timeout is 30 s).
READ_TIMEOUT_S = 5.0
_CCCD = "2902"


@dataclass
class ServedChar:
    """One characteristic as served by bumble, with the shim's handles for it."""

    char: gatt.Characteristic[Any]
    value_handle: int  # the shim's
    cccd_handle: int | None = None  # the shim's


@dataclass
class BoardHost:
    """One board: its controller on the air, its bumble host and the shim's socket."""

    ident: str
    address: str
    controller: Controller
    device: Device
    send: Callable[[Frame], None]  # a frame to the shim
    chars: dict[int, ServedChar] = field(default_factory=dict)  # by the shim's value handle
    conns: dict[int, Connection] = field(default_factory=dict)
    _work: asyncio.Queue[Frame] = field(default_factory=asyncio.Queue)
    _reads: dict[int, asyncio.Future[bytes]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _worker: asyncio.Task[None] | None = None
    notified: int = 0
    late: int = 0  # notifications the firmware sent on a link that had gone before they left
    links: int = 0

    @classmethod
    async def start(cls, air: Any, ident: str, address: str, mtu: int, send: Callable[[Frame], None]) -> BoardHost:
        controller = AirController(f"board {ident}", link=air)
        controller.le_acl_data_packet_length = ACL_DATA_LENGTH
        device = Device.with_hci(ident, hci.Address(address, hci.Address.RANDOM_DEVICE_ADDRESS), controller, controller)
        host = cls(ident=ident, address=address, controller=controller, device=device, send=send)
        host.set_mtu(mtu)
        device.on(device.EVENT_CONNECTION, host._on_connection)
        device.on("characteristic_subscription", host._on_subscription)
        await device.power_on()
        host._worker = asyncio.create_task(host._work_loop())
        return host

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        for fut in self._reads.values():
            fut.cancel()

    def set_mtu(self, mtu: int) -> None:
        # The board's preferred MTU (ble.config(mtu=...)) is the ATT server's Exchange MTU answer.
        self.device.gatt_server.max_mtu = max(DEFAULT_MTU, min(MAX_MTU, int(mtu)))

    # ------------------------------------------------------------------ events to the shim
    def _on_connection(self, connection: Connection) -> None:
        if connection.role != hci.Role.PERIPHERAL:
            return
        handle = connection.handle
        self.conns[handle] = connection
        self.links += 1
        peer = connection.peer_address
        log.info("board %s: connected to %s (conn %d)", self.ident, peer, handle)
        self.send({"t": "connect", "conn": handle, "addr": _addr_text(peer), "addr_type": int(peer.address_type) & 1})

        def on_mtu() -> None:
            self.send({"t": "mtu", "conn": handle, "mtu": connection.att_mtu})

        def on_disconnection(reason: int) -> None:
            self.conns.pop(handle, None)
            log.info("board %s: conn %d lost (HCI reason 0x%02X)", self.ident, handle, reason)
            self.send({"t": "disconnect", "conn": handle, "reason": f"HCI 0x{reason:02X}"})

        connection.on(connection.EVENT_CONNECTION_ATT_MTU_UPDATE, on_mtu)
        connection.on(connection.EVENT_DISCONNECTION, on_disconnection)

    def _on_subscription(
        self, connection: Connection, characteristic: gatt.Characteristic[Any], notify: bool, indicate: bool
    ) -> None:
        # bumble's ATT server keeps the CCCD; the shim mirrors it for gatts_write(send_update=True).
        served = next((s for s in self.chars.values() if s.char is characteristic), None)
        if served is None or served.cccd_handle is None:
            return
        bits = (1 if notify else 0) | (2 if indicate else 0)
        self.send({"t": "write", "conn": connection.handle, "h": served.cccd_handle,
                   "d": bits.to_bytes(2, "little").hex(), "rsp": False})

    # ------------------------------------------------------------------ frames from the shim
    def handle(self, f: Frame) -> None:
        t = f["t"]
        if t == "mtu_pref":
            self.set_mtu(int(f["mtu"]))
        elif t in ("read_rsp", "write_rsp"):
            fut = self._reads.pop(int(f.get("id") or 0), None)
            if fut is not None and not fut.done():
                if f.get("error"):
                    fut.set_exception(OSError(str(f["error"])))
                else:
                    fut.set_result(from_hex(f.get("d")))
        elif t in ("services", "adv", "notify", "indicate", "disconnect"):
            self._work.put_nowait(f)  # in the order the firmware made the calls
        else:
            raise ValueError(f"unknown frame type {t!r} from a board")

    async def _work_loop(self) -> None:
        while True:
            f = await self._work.get()
            try:
                await getattr(self, "_do_" + f["t"])(f)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad call must not stop the board's host
                log.warning("board %s: %s failed: %s", self.ident, f["t"], exc)

    async def _do_services(self, f: Frame) -> None:
        self.chars = {}
        services = []
        for s in f["services"]:
            chars = []
            for c in s.get("chars", []):
                flags = int(c.get("flags", 0))
                value_handle = int(c["handle"])
                char = gatt.Characteristic(
                    c["uuid"],
                    gatt.Characteristic.Properties(flags & 0x7F),
                    gatt.Characteristic.Permissions.READABLE | gatt.Characteristic.Permissions.WRITEABLE,
                    gatt.CharacteristicValue(read=self._reader(value_handle), write=self._writer(value_handle)),
                )
                cccd = next((int(d["handle"]) for d in c.get("descs", []) if d["uuid"].lower() == _CCCD), None)
                self.chars[value_handle] = ServedChar(char, value_handle, cccd)
                chars.append(char)
            services.append(gatt.Service(s["uuid"], chars))
        # A re-registration replaces the table (gatts_register_services on the ports does too).
        server = self.device.gatt_server
        for old in list(server.services):
            if old.uuid not in (gatt.GATT_GENERIC_ACCESS_SERVICE, gatt.GATT_GENERIC_ATTRIBUTE_SERVICE):
                server.attributes = [a for a in server.attributes if not _within(a, old)]
                server.services.remove(old)
        self.device.add_services(services)
        log.info("board %s: serving %d service(s)", self.ident, len(services))

    def _reader(self, value_handle: int) -> Callable[[Connection], Any]:
        async def read(connection: Connection) -> bytes:
            rid = next(self._ids)
            fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self._reads[rid] = fut
            self.send({"t": "read", "conn": connection.handle, "h": value_handle, "id": rid})
            return await asyncio.wait_for(fut, READ_TIMEOUT_S)

        return read

    def _writer(self, value_handle: int) -> Callable[[Connection, Any], None]:
        def write(connection: Connection, value: Any) -> None:
            # As on NimBLE and BTstack, the stack stores the value and answers the ATT request;
            # the firmware hears of it afterwards through _IRQ_GATTS_WRITE.
            self.send({"t": "write", "conn": connection.handle, "h": value_handle, "d": to_hex(value), "rsp": False})

        return write

    async def _do_adv(self, f: Frame) -> None:
        if self.device.is_advertising:
            await self.device.stop_advertising()
        if f.get("adv") is None:
            return
        interval_ms = max(20.0, int(f.get("interval_us", 100000)) / 1000.0)
        kind = (
            AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE
            if f.get("connectable", True)
            else AdvertisingType.UNDIRECTED_SCANNABLE
        )
        await self.device.start_advertising(
            advertising_type=kind,
            advertising_data=from_hex(f.get("adv")),
            scan_response_data=from_hex(f.get("resp")),
            advertising_interval_min=interval_ms,
            advertising_interval_max=interval_ms,
        )

    async def _do_notify(self, f: Frame) -> None:
        connection, served = self.conns.get(int(f["conn"])), self.chars.get(int(f["h"]))
        if connection is None or served is None:
            self.late += 1  # the link dropped while it was on its way: gone, as on air
            return
        self.notified += 1
        # force: MicroPython notifies whether or not the central subscribed (its docs).
        await self.device.notify_subscriber(connection, served.char, from_hex(f.get("d")), force=True)

    async def _do_indicate(self, f: Frame) -> None:
        connection, served = self.conns.get(int(f["conn"])), self.chars.get(int(f["h"]))
        status = 0
        if connection is None or served is None:
            status = 19
        else:
            try:
                await self.device.indicate_subscriber(connection, served.char, from_hex(f.get("d")), force=True)
            except Exception as exc:  # timeout or disconnect: the firmware is told, not the hub
                log.info("board %s: indication failed: %s", self.ident, exc)
                status = 19
        self.send({"t": "indicate_done", "conn": int(f["conn"]), "h": int(f["h"]), "status": status})

    async def _do_disconnect(self, f: Frame) -> None:
        connection = self.conns.get(int(f["conn"]))
        if connection is not None:
            await connection.disconnect()


def _within(attribute: Any, service: gatt.Service) -> bool:
    return bool(service.handle <= attribute.handle <= service.end_group_handle)


def _addr_text(address: hci.Address) -> str:
    return str(address).split("/")[0].upper()
