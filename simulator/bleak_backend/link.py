"""One central's TCP connection to the virtual radio, shared by the scanner and client backends."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Callable
from typing import Any

from bleak.exc import BleakError

from simulator.radio.protocol import MAX_FRAME, Frame, ProtocolError, decode, encode, parse_hostport

log = logging.getLogger(__name__)

FrameHandler = Callable[[Frame], None]


def radio_address(radio: str | None) -> str:
    """The radio to use: the ``radio=`` argument (``sim://HOST:PORT`` or ``HOST:PORT``) or env
    ``STEDI_RADIO``."""
    text = radio or os.environ.get("STEDI_RADIO")
    if not text:
        raise BleakError("no virtual radio given: pass radio='sim://HOST:PORT' or set STEDI_RADIO")
    host, port = parse_hostport(text)
    return f"{host}:{port}"


class RadioLink:
    """Frames in and out; request/response matched by ``id``; unsolicited frames to a handler."""

    def __init__(self, radio: str, on_frame: FrameHandler, on_close: Callable[[], None]):
        self.radio = radio
        self.addr = ""
        self._on_frame = on_frame
        self._on_close = on_close
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Frame]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self, ident: str = "gateway") -> None:
        host, port = parse_hostport(self.radio)
        try:
            reader, self._writer = await asyncio.open_connection(host, port, limit=MAX_FRAME)
        except OSError as exc:
            raise BleakError(f"virtual radio at {self.radio} unreachable: {exc}") from exc
        self._task = asyncio.create_task(self._read(reader))
        welcome = await self.request({"t": "hello", "role": "central", "id": ident}, expect_id=False)
        self.addr = str(welcome.get("addr", ""))

    @property
    def is_open(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    def send(self, frame: Frame) -> None:
        if self._writer is None or self._writer.is_closing():
            raise BleakError("not connected to the virtual radio")
        self._writer.write(encode(frame))

    async def request(self, frame: Frame, timeout: float = 10.0, expect_id: bool = True) -> Frame:
        """Send ``frame`` and wait for the frame that answers it (same ``id``)."""
        rid = next(self._ids) if expect_id else 0
        if expect_id:
            frame = {**frame, "id": rid}
        fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        try:
            self.send(frame)
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError as exc:
            raise BleakError(f"virtual radio: no answer to {frame['t']} within {timeout}s") from exc
        finally:
            self._waiting.pop(rid, None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    frame = decode(line)
                except ProtocolError as exc:
                    log.warning("bad frame from the radio: %s", exc)
                    continue
                t = frame["t"]
                if t == "welcome":
                    self._resolve(0, frame)
                elif t.endswith("_rsp") or t == "rsp_error":
                    self._resolve(int(frame.get("id") or 0), frame)
                else:
                    self._on_frame(frame)
        except (ConnectionError, ValueError) as exc:
            log.warning("virtual radio link broke: %s", exc)
        finally:
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(BleakError("virtual radio connection closed"))
            self._on_close()

    def _resolve(self, rid: int, frame: Frame) -> None:
        fut = self._waiting.get(rid)
        if fut is not None and not fut.done():
            fut.set_result(frame)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._writer = None


def check(frame: Frame, what: str) -> Frame:
    """Raise the radio's error answer as a BleakError."""
    if frame.get("error"):
        raise BleakError(f"{what}: {frame['error']}")
    return frame


def details_of(radio: str, addr: str) -> dict[str, Any]:
    """``BLEDevice.details`` of a simulated device: where its radio is."""
    return {"radio": radio, "addr": addr}
