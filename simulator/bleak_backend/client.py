"""bleak client backend on a bumble central: connects through the virtual radio's air.

Everything on the wire is bumble's: LE Create Connection (waits for the board's advert), the
ATT MTU exchange, GATT discovery, reads, writes, CCCD writes for notify, notifications.
"""

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
from bumble import core, hci
from bumble.device import Connection, Peer
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy

from simulator.bleak_backend.link import CentralHost, ask, radio_address
from simulator.radio.protocol import MAX_MTU

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


def _uuid(u: core.UUID) -> str:
    return str(u.to_hex_str("-")).lower() if len(u.uuid_bytes) == 16 else f"0000{u.to_hex_str().lower()}-0000-1000-8000-00805f9b34fb"


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
        self._device_name = address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        self._host: CentralHost | None = None
        self._conn: Connection | None = None
        self._peer: Peer | None = None
        self._chars: dict[int, CharacteristicProxy[bytes]] = {}
        self._descs: dict[int, DescriptorProxy] = {}
        self._told_disconnect = False
        self._callbacks: dict[int, Callable[[bytes], None]] = {}

    # ------------------------------------------------------------------ connection
    @property
    def name(self) -> str:
        return self._device_name or self.address

    @property
    def mtu_size(self) -> int:
        return int(self._conn.att_mtu) if self._conn is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._conn is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self.is_connected:
            return
        timeout = float(kwargs.get("timeout", self._timeout))
        self._host = await CentralHost.open(self._radio, "gateway", lambda: self._lost("virtual radio connection closed"))
        try:
            address = hci.Address(self.address, hci.Address.RANDOM_DEVICE_ADDRESS)
            try:
                # LE Create Connection: waits for a connectable advert from the address.
                conn = await self._host.device.connect(address, timeout=max(0.1, timeout - 0.3))
            except (core.TimeoutError, TimeoutError) as exc:
                why = (await ask(self._radio, {"t": "reach", "addr": self.address})).get("reason")
                raise BleakError(f"connect to {self.address}: {why or 'no connectable advert in time'}") from exc
            except (core.BaseBumbleError, hci.HCI_Error) as exc:
                raise BleakError(f"connect to {self.address}: {exc}") from exc
            self._conn = conn
            self._told_disconnect = False
            conn.on(conn.EVENT_DISCONNECTION, lambda reason: self._lost(f"HCI reason 0x{reason:02X}"))
            peer = self._peer = Peer(conn)
            # Operating-system stacks exchange the MTU right after connecting; so do we.
            await asyncio.wait_for(peer.request_mtu(MAX_MTU), timeout)
            await asyncio.wait_for(peer.discover_services(), timeout)
            for service in peer.services:
                await asyncio.wait_for(service.discover_characteristics(), timeout)
                for char in service.characteristics:
                    await asyncio.wait_for(char.discover_descriptors(), timeout)
            self.services = self._collection(peer)
        except BaseException:
            await self._close_host()
            self._conn = None
            raise
        log.info("connected to %s (handle %d), MTU %d", self.address, conn.handle, conn.att_mtu)

    def _collection(self, peer: Peer) -> BleakGATTServiceCollection:
        # Semi-public bleak constructors (pinned bleak>=3.1,<4): see docs/simulator-radio.md.
        collection = BleakGATTServiceCollection()
        self._chars, self._descs = {}, {}
        for s in peer.services:
            service = BleakGATTService(s, s.handle, _uuid(s.uuid))
            collection.add_service(service)
            for c in s.characteristics:
                props: Any = [name for bit, name in _PROPERTIES if int(c.properties) & bit]
                char = BleakGATTCharacteristic(c, c.handle, _uuid(c.uuid), props, lambda: self.mtu_size - 3, service)
                collection.add_characteristic(char)
                self._chars[c.handle] = c
                for d in c.descriptors:
                    collection.add_descriptor(BleakGATTDescriptor(d, d.handle, _uuid(d.type), char))
                    self._descs[d.handle] = d
        return collection

    async def _close_host(self) -> None:
        host, self._host = self._host, None
        if host is not None:
            await host.close()

    async def disconnect(self) -> None:
        conn = self._conn
        if conn is not None:
            try:
                await asyncio.wait_for(conn.disconnect(), 2)
            except (core.BaseBumbleError, hci.HCI_Error, TimeoutError) as exc:
                log.info("disconnect from %s: %s", self.address, exc)
        await self._close_host()
        self._lost("disconnect() called")

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Pairing is not modelled (boards use none): it succeeds at once."""

    async def unpair(self) -> None:
        """Nothing to forget: no bonds."""

    def _lost(self, reason: str) -> None:
        if self._conn is None and self._told_disconnect:
            return
        if self._conn is not None:
            log.info("disconnected from %s: %s", self.address, reason)
        self._conn = None
        self._peer = None
        if not self._told_disconnect:
            self._told_disconnect = True
            if self._host is not None:
                asyncio.get_running_loop().create_task(self._close_host())
            if self._disconnected_callback is not None:
                self._disconnected_callback()

    # ------------------------------------------------------------------ GATT
    def _live(self) -> Peer:
        if self._peer is None or self._conn is None:
            raise BleakError(f"not connected to {self.address}")
        return self._peer

    async def _guard(self, what: str, op: Any) -> Any:
        try:
            return await asyncio.wait_for(op, self._timeout)
        except (core.BaseBumbleError, hci.HCI_Error, TimeoutError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and self._conn is not None:
                raise
            raise BleakError(f"{what} on {self.address}: {exc or type(exc).__name__}") from exc

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        self._live()
        proxy = self._chars[characteristic.handle]
        return bytearray(await self._guard(f"read {characteristic.uuid}", proxy.read_value()))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        self._live()
        return bytearray(await self._guard(f"read descriptor {descriptor.handle}", self._descs[descriptor.handle].read_value()))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool) -> None:
        self._live()
        proxy = self._chars[characteristic.handle]
        await self._guard(f"write {characteristic.uuid}", proxy.write_value(bytes(data), with_response=response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        self._live()
        await self._guard(
            f"write descriptor {descriptor.handle}", self._descs[descriptor.handle].write_value(bytes(data), True)
        )

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        self._live()
        proxy = self._chars[characteristic.handle]

        def on_value(value: bytes) -> None:
            try:
                callback(bytearray(value))
            except Exception:  # a bug in a caller's callback must not break the link
                log.exception("notification callback for %s failed", characteristic.uuid)

        # bumble writes the CCCD (0x0001 notify, 0x0002 indicate) and routes the values.  As
        # BlueZ and CoreBluetooth do, both kinds reach the callback: MicroPython's gatts_indicate
        # sends an indication even on a characteristic declared notify-only.
        peer = self._live()
        prefer_notify = "notify" in characteristic.properties
        await self._guard(
            f"subscribe {characteristic.uuid}", peer.gatt_client.subscribe(proxy, on_value, prefer_notify=prefer_notify)
        )
        for routes in (peer.gatt_client.notification_subscribers, peer.gatt_client.indication_subscribers):
            routes.setdefault(proxy.handle, set()).add(on_value)
        self._callbacks[characteristic.handle] = on_value

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        if not self.is_connected:
            return
        peer = self._live()
        proxy = self._chars[characteristic.handle]
        on_value = self._callbacks.pop(characteristic.handle, None)
        await self._guard(f"unsubscribe {characteristic.uuid}", peer.gatt_client.unsubscribe(proxy, on_value))
