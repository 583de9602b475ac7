"""A central's own bumble host, on a virtual controller of the radio hub.

Each scanner and each client opens one: a TCP connection to the hub, a ``hello`` line asking
for an HCI controller, then raw HCI packets both ways, with a bumble ``Device`` as the host
(the same host stack bumble runs on a USB dongle).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from typing import Any

from bleak.exc import BleakError
from bumble import hci
from bumble.device import Device
from bumble.transport.common import StreamPacketSource

from simulator.radio.protocol import parse_hostport

log = logging.getLogger(__name__)


def radio_address(radio: str | None) -> str:
    """The radio to use: the ``radio=`` argument (``sim://HOST:PORT`` or ``HOST:PORT``) or env
    ``STEDI_RADIO``."""
    text = radio or os.environ.get("STEDI_RADIO")
    if not text:
        raise BleakError("no virtual radio given: pass radio='sim://HOST:PORT' or set STEDI_RADIO")
    host, port = parse_hostport(text)
    return f"{host}:{port}"


class _Sink:
    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer

    def on_packet(self, packet: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(packet)


class CentralHost:
    """``await CentralHost.open(radio, ident, on_lost)``: a powered-on bumble ``Device`` in
    ``.device``; ``on_lost`` runs once if the hub goes away; ``await close()``."""

    def __init__(self, radio: str, device: Device, writer: asyncio.StreamWriter, pump: asyncio.Task[None]):
        self.radio = radio
        self.device = device
        self._writer = writer
        self._pump = pump

    @classmethod
    async def open(cls, radio: str, ident: str, on_lost: Callable[[], None] = lambda: None) -> CentralHost:
        host, port = parse_hostport(radio)
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            raise BleakError(f"virtual radio at {radio} unreachable: {exc}") from exc
        try:
            writer.write(json.dumps({"t": "hello", "role": "hci", "id": ident}).encode() + b"\n")
            welcome = json.loads(await asyncio.wait_for(reader.readline(), 10) or b"{}")
            if welcome.get("t") != "welcome":
                raise BleakError(f"virtual radio at {radio} did not welcome us: {welcome}")
            source = StreamPacketSource()
            address = hci.Address(str(welcome["addr"]), hci.Address.RANDOM_DEVICE_ADDRESS)
            device = Device.with_hci(ident, address, source, _Sink(writer))
            pump = asyncio.create_task(_pump(reader, source, on_lost))
            await asyncio.wait_for(device.power_on(), 10)
        except (OSError, ValueError, TimeoutError) as exc:
            writer.close()
            raise BleakError(f"virtual radio at {radio}: {exc}") from exc
        return cls(radio, device, writer, pump)

    async def close(self) -> None:
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


async def _pump(reader: asyncio.StreamReader, source: StreamPacketSource, on_lost: Callable[[], None]) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            source.data_received(data)
    except ConnectionError as exc:
        log.warning("virtual radio link broke: %s", exc)
    on_lost()


async def ask(radio: str, frame: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """One control frame to the hub and its answer (e.g. why a connection failed)."""
    host, port = parse_hostport(radio)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(json.dumps(frame).encode() + b"\n")
        answer: dict[str, Any] = json.loads(await asyncio.wait_for(reader.readline(), timeout) or b"{}")
        return answer
    finally:
        writer.close()


def details_of(radio: str, addr: str) -> dict[str, Any]:
    """``BLEDevice.details`` of a simulated device: where its radio is."""
    return {"radio": radio, "addr": addr}
