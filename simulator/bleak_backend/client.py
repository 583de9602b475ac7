"""bleak client backend for the virtual radio."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError

from simulator.bleak_backend.link import RadioLink, check, radio_address
from simulator.radio.protocol import DEFAULT_MTU, MAX_MTU, Frame, from_hex, to_hex, uuid_str

log = logging.getLogger(__name__)

# GATT characteristic properties (Core Spec Vol 3 Part G 3.3.1.1) by bleak's names.
_PROPERTIES = (
    (0x01, "broadcast"),
    (0x02, "read"),
    (0x04, "write-without-response"),
    (0x08, "write"),
    (0x10, "notify"),
    (0x20, "indicate"),
    (0x40, "authenticated-signed-writes"),
)
_CCCD_UUID = "00002902-0000-1000-8000-00805f9b34fb"


class SimClient(BaseBleakClient):
    """Connects through the virtual radio.  Extra keyword: ``radio="sim://HOST:PORT"`` (else the
    radio of the ``BLEDevice`` the scanner found, else env ``STEDI_RADIO``)."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        radio: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        details = address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        from_device = details.get("radio") if isinstance(details, dict) else None
        self._radio = radio_address(radio or from_device)
        self._device_name = (
            address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        )
        self._link: RadioLink | None = None
        self._conn: int | None = None
        self._mtu = DEFAULT_MTU
        self._notify: dict[int, NotifyCallback] = {}
        self._told_disconnect = False

    # ------------------------------------------------------------------ connection
    @property
    def name(self) -> str:
        return self._device_name or self.address

    @property
    def mtu_size(self) -> int:
        return self._mtu

    @property
    def is_connected(self) -> bool:
        return self._conn is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self.is_connected:
            return
        timeout = float(kwargs.get("timeout", self._timeout))
        self._link = RadioLink(self._radio, self._on_frame, self._on_radio_closed)
        await self._link.open("gateway")
        try:
            # The radio gives up just before us, so its reason (out of range, ...) reaches the caller.
            frame = {"t": "connect", "addr": self.address, "timeout": max(0.0, timeout - 0.2)}
            rsp = check(await self._link.request(frame, timeout), "connect")
        except BleakError:
            await self._link.close()
            self._link = None
            raise
        self._conn = int(rsp["conn"])
        self._told_disconnect = False
        self._device_name = self._device_name or rsp.get("name") or None
        self.services = self._collection(rsp.get("services") or [])
        # Operating-system stacks exchange the MTU right after connecting; so do we.
        mtu = check(await self._link.request({"t": "mtu", "conn": self._conn, "mtu": MAX_MTU}, timeout), "MTU")
        self._mtu = int(mtu["mtu"])
        log.info("connected to %s over conn %d, MTU %d", self.address, self._conn, self._mtu)

    def _collection(self, services: list[dict[str, Any]]) -> BleakGATTServiceCollection:
        # Semi-public bleak constructors (pinned bleak>=3.1,<4): see docs/simulator-radio.md.
        collection = BleakGATTServiceCollection()
        for s in services:
            service = BleakGATTService(s, int(s["handle"]), uuid_str(s["uuid"]))
            collection.add_service(service)
            for c in s.get("chars", []):
                flags = int(c.get("flags", 0))
                props: Any = [name for bit, name in _PROPERTIES if flags & bit]
                char = BleakGATTCharacteristic(
                    c, int(c["handle"]), uuid_str(c["uuid"]), props, lambda: self._mtu - 3, service
                )
                collection.add_characteristic(char)
                for d in c.get("descs", []):
                    collection.add_descriptor(BleakGATTDescriptor(d, int(d["handle"]), uuid_str(d["uuid"]), char))
        return collection

    async def disconnect(self) -> None:
        if self._link is None:
            return
        if self._conn is not None and self._link.is_open:
            self._link.send({"t": "disconnect", "conn": self._conn})
            for _ in range(100):  # wait for the radio to confirm, briefly
                if self._conn is None:
                    break
                await asyncio.sleep(0.01)
        link, self._link = self._link, None
        await link.close()
        self._lost("disconnect() called")

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """The virtual radio has no security layer: pairing succeeds at once."""

    async def unpair(self) -> None:
        """Nothing to forget: the virtual radio has no bonds."""

    def _on_frame(self, frame: Frame) -> None:
        t = frame["t"]
        if t == "notify" and frame.get("conn") == self._conn:
            callback = self._notify.get(int(frame["h"]))
            if callback is not None:
                try:
                    callback(bytearray(from_hex(frame.get("d"))))
                except Exception:  # a bug in a caller's callback must not break the link
                    log.exception("notification callback for handle %s failed", frame["h"])
        elif t == "disconnect" and frame.get("conn") == self._conn:
            self._lost(str(frame.get("reason", "")))

    def _on_radio_closed(self) -> None:
        self._lost("virtual radio connection closed")

    def _lost(self, reason: str) -> None:
        if self._conn is None and self._told_disconnect:
            return
        if self._conn is not None:
            log.info("disconnected from %s: %s", self.address, reason)
        self._conn = None
        self._notify.clear()
        if not self._told_disconnect:
            self._told_disconnect = True
            if self._disconnected_callback is not None:
                self._disconnected_callback()

    # ------------------------------------------------------------------ GATT
    def _live(self) -> tuple[RadioLink, int]:
        if self._link is None or self._conn is None:
            raise BleakError(f"not connected to {self.address}")
        return self._link, self._conn

    async def _read(self, handle: int) -> bytearray:
        link, conn = self._live()
        rsp = check(await link.request({"t": "read", "conn": conn, "h": handle}, self._timeout), f"read {handle}")
        return bytearray(from_hex(rsp.get("d")))

    async def _write(self, handle: int, data: SizedBuffer, response: bool) -> None:
        link, conn = self._live()
        frame = {"t": "write", "conn": conn, "h": handle, "d": to_hex(bytes(data)), "rsp": response}
        if response:
            check(await link.request(frame, self._timeout), f"write {handle}")
        else:
            link.send(frame)

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return await self._read(characteristic.handle)

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return await self._read(descriptor.handle)

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool) -> None:
        await self._write(characteristic.handle, data, response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        await self._write(descriptor.handle, data, True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        self._live()
        self._notify[characteristic.handle] = callback
        cccd = characteristic.get_descriptor(_CCCD_UUID)
        if cccd is not None:
            bits = b"\x01\x00" if "notify" in characteristic.properties else b"\x02\x00"
            await self._write(cccd.handle, bits, True)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._notify.pop(characteristic.handle, None)
        cccd = characteristic.get_descriptor(_CCCD_UUID)
        if cccd is not None and self.is_connected:
            await self._write(cccd.handle, b"\x00\x00", True)
