"""The virtual radio: a bumble hub between virtual boards and gateways.

One process (``stedi sim radio``) holds the air (:class:`simulator.radio.air.Air`, bumble's
``LocalLink`` with faults) and one bumble virtual controller per node, all behind one TCP port.
Each client's first line says what it is:

- ``{"t":"hello","role":"hci",...}``: a central's bumble host (the ``sim://`` bleak backend);
  after the ``welcome`` line the socket carries raw HCI packets (H4) to its own controller.
- ``{"t":"hello","role":"peripheral",...}``: a board's ``bluetooth`` shim; the hub runs the
  board's bumble host (:class:`simulator.radio.board_host.BoardHost`) and speaks the board
  protocol (JSON lines) with the shim.
- ``faults`` / ``drop`` / ``status`` / ``reach``: control frames, answered, any number.
- a first byte 0x01 (an H4 HCI command packet, Core Spec Vol 4 Part A 2): a stock bumble host
  on ``tcp-client:HOST:PORT``, no hello, gets a controller of its own (the conformance test's
  central is such a plain bumble host).

A node whose socket closes leaves the air: its peers see a supervision timeout.  Faults are
drawn from one seeded generator and logged, so a failing run replays.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from bumble.controller import Controller
from bumble.transport.common import StreamPacketSource

from simulator.radio.air import Air, AirController
from simulator.radio.board_host import ACL_DATA_LENGTH, BoardHost
from simulator.radio.faults import Faults
from simulator.radio.protocol import MAX_FRAME, MAX_MTU, Frame, ProtocolError, decode, encode

log = logging.getLogger(__name__)

#: The H4 packet indicator of an HCI command (Core Spec Vol 4 Part A 2): a host's first byte.
H4_COMMAND = b"\x01"
#: How often the random-disconnect fault is drawn and out-of-range links are dropped.
TICK_S = 0.1


@dataclass(eq=False)
class Node:
    """One TCP client of the hub."""

    writer: asyncio.StreamWriter
    number: int
    role: str = "unknown"
    ident: str = ""
    addr: str = ""
    controller: Controller | None = None
    board: BoardHost | None = None
    names: set[str] = field(default_factory=set)

    @property
    def label(self) -> str:
        return f"{self.role} {self.ident or '#' + str(self.number)} ({self.addr})"


class _HciSink:
    """Controller -> host packets onto a central's socket."""

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer

    def on_packet(self, packet: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(packet)


class Radio:
    """The hub.  ``await start()`` listens (``port=0`` picks a free port, see ``.port``);
    ``await close()`` drops every link and client."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, faults: Faults | None = None, seed: int = 0):
        self.host = host
        self._requested_port = port
        self.faults = faults or Faults()
        self.seed = seed
        # One seeded stream per kind of fault, so the traffic (adverts, packets) does not shift
        # which tick a random disconnect falls on: the same seed replays the same disconnects.
        self._rng = random.Random(seed)
        self._disconnect_rng = random.Random(f"{seed}/disconnect")
        self._nodes: list[Node] = []
        self._numbers = itertools.count(1)
        self.air = Air(self.faults, self._rng, self._names_of)
        self._server: asyncio.base_events.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.port = 0
        self._fault_drops = 0
        self._links_gone = 0  # links made by boards that have left
        self._late_gone = 0

    @property
    def stats(self) -> dict[str, int]:
        """Counters for tests and the log: adverts delivered; packets lost (adverts missed and
        data packets retransmitted); ACL PDUs carried; notifications the boards sent; those lost
        with their link (in flight on the air, or sent by a board after its link had gone);
        links made; drops (of them by the random-disconnect fault)."""
        late = sum(n.board.late for n in self._nodes if n.board is not None) + self._late_gone
        return {
            "adv": self.air.stats["adv"],
            "lost": self.air.stats["lost"],
            "lost_in_flight": self.air.stats["lost_in_flight"] + late,
            "acl": self.air.stats["acl"],
            "notify": sum(n.board.notified for n in self._nodes if n.board is not None),
            "links": sum(n.board.links for n in self._nodes if n.board is not None) + self._links_gone,
            "drops": self.air.stats["drops"],
            "fault_drops": self._fault_drops,
        }

    # ---------------------------------------------------------------- life cycle
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self._requested_port, limit=MAX_FRAME)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick())
        log.info("radio listening on %s:%d (seed %d, faults %s)", self.host, self.port, self.seed, self.faults.as_dict())

    async def close(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        for ends in self.air.links():
            self.air.drop(ends)
        if self._server:
            self._server.close()
        for node in list(self._nodes):
            if node.board is not None:
                await node.board.close()
            node.writer.close()
        if self._server:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        log.info("radio closed: %s", self.stats)

    # ---------------------------------------------------------------- faults (run time)
    def set_faults(self, **changes: Any) -> dict[str, Any]:
        self.faults.update(changes)
        log.warning("faults set: %s", self.faults.as_dict())
        self._enforce_range()
        return self.faults.as_dict()

    def drop_links(self, target: str | None = None, reason: str = "link dropped (fault)") -> int:
        """Drop every link (or those of the node whose id or address is ``target``) as a
        supervision timeout would: both ends are told."""
        dropped = 0
        for ends in self.air.links():
            names = self._names_of(ends.central) | self._names_of(ends.peripheral)
            if target is None or target in names or target.upper() in names:
                log.info("%s: %s", reason, self._describe(ends))
                self.air.drop(ends)
                dropped += 1
        return dropped

    def status(self) -> dict[str, Any]:
        return {
            "nodes": [
                {
                    "role": n.role,
                    "id": n.ident,
                    "addr": n.addr,
                    "advertising": bool(n.board is not None and n.board.device.is_advertising),
                }
                for n in self._nodes
                if n.role != "control"
            ],
            "links": [
                {
                    "conn": e.peripheral_conn.handle,
                    "central": str(e.central_conn.self_address).split("/")[0],
                    "peripheral": str(e.peripheral_conn.self_address).split("/")[0],
                    "mtu": self._mtu_of(e.peripheral),
                }
                for e in self.air.links()
            ],
            "faults": self.faults.as_dict(),
            "stats": self.stats,
        }

    def reach(self, addr: str) -> str:
        """Why a central cannot connect to ``addr`` (for its error message), or "" if it can."""
        target = next((n for n in self._nodes if n.board is not None and addr.upper() in n.names), None)
        if target is None:
            return f"no peripheral {addr} on the air"
        if addr.upper() in self.faults.out_of_range or target.names & self.faults.out_of_range:
            return f"{addr} is out of range"
        if target.board is not None and not target.board.device.is_advertising:
            return f"{addr} is not advertising connectably"
        return ""

    # ---------------------------------------------------------------- plumbing
    def _names_of(self, controller: Controller) -> set[str]:
        for n in self._nodes:
            if n.controller is controller:
                return n.names
        return set()

    def _mtu_of(self, controller: Controller) -> int:
        for n in self._nodes:
            if n.controller is controller and n.board is not None:
                conns = list(n.board.conns.values())
                return int(conns[0].att_mtu) if conns else 23
        return 23

    def _describe(self, ends: Any) -> str:
        return f"{sorted(self._names_of(ends.central))} <-> {sorted(self._names_of(ends.peripheral))}"

    def _make_addr(self, node: Node) -> str:
        # Random static address (top bits 11, Core Spec Vol 6 Part B 1.3.2.1), unique per client.
        n = node.number
        return f"C0:5E:D1:{(n >> 16) & 0xFF:02X}:{(n >> 8) & 0xFF:02X}:{n & 0xFF:02X}"

    def _answer(self, node: Node, frame: Frame) -> None:
        if not node.writer.is_closing():
            node.writer.write(encode(frame))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        node = Node(writer=writer, number=next(self._numbers))
        self._nodes.append(node)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                first = await reader.readexactly(1)
                if first == H4_COMMAND:
                    await self._as_hci(node, {"id": f"hci-{node.number}"}, reader, first, welcome=False)
                else:
                    await self._converse(node, reader, first)
        finally:
            await self._leave(node)

    async def _converse(self, node: Node, reader: asyncio.StreamReader, first: bytes = b"") -> None:
        while True:
            try:
                line = first + await reader.readline()
                first = b""
            except (ValueError, asyncio.LimitOverrunError):
                log.error("%s sent a frame over %d bytes; closing it", node.label, MAX_FRAME)
                return
            if not line:
                return
            if not line.strip():
                continue
            try:
                frame = decode(line)
                if frame["t"] == "hello" and frame.get("role") == "hci" and node.role == "unknown":
                    await self._as_hci(node, frame, reader)
                    return
                await self._handle(node, frame)
            except (ProtocolError, KeyError, TypeError, ValueError) as exc:
                log.warning("bad frame from %s: %s", node.label, exc)
                self._answer(node, {"t": "error", "error": str(exc)})

    async def _leave(self, node: Node) -> None:
        self._nodes.remove(node)
        if node.controller is not None:
            self.air.remove_controller(node.controller)  # peers see a supervision timeout
        if node.board is not None:
            self._links_gone += node.board.links
            self._late_gone += node.board.late
            await node.board.close()
        if node.role != "unknown":
            log.info("%s left", node.label)
        node.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await node.writer.wait_closed()

    async def _as_hci(
        self, node: Node, hello: Frame, reader: asyncio.StreamReader, first: bytes = b"", welcome: bool = True
    ) -> None:
        node.role = "central"
        node.ident = str(hello.get("id", ""))
        node.addr = self._make_addr(node)
        node.names = {node.ident, node.addr}
        source = StreamPacketSource()
        controller = AirController(f"central {node.ident}", source, _HciSink(node.writer), self.air)
        controller.le_acl_data_packet_length = ACL_DATA_LENGTH
        node.controller = controller
        log.info("%s joined", node.label)
        if welcome:
            self._answer(node, {"t": "welcome", "addr": node.addr, "faults": self.faults.as_dict()})
        if first:
            source.data_received(first)
        while True:
            data = await reader.read(65536)
            if not data:
                return
            source.data_received(data)

    async def _handle(self, node: Node, f: Frame) -> None:
        t = f["t"]
        if t == "hello":
            await self._on_hello(node, f)
        elif t == "faults":
            changes = {k: v for k, v in f.items() if k != "t"}
            self._answer(node, {"t": "faults_ok", "faults": self.set_faults(**changes)})
        elif t == "drop":
            self._answer(node, {"t": "drop_ok", "dropped": self.drop_links(f.get("target"))})
        elif t == "status":
            self._answer(node, {"t": "status", **self.status()})
        elif t == "reach":
            self._answer(node, {"t": "reach", "reason": self.reach(str(f["addr"]))})
        elif node.board is not None:
            node.board.handle(f)
        else:
            raise ValueError(f"unknown frame type {t!r}" if t not in _BOARD_FRAMES else f"say hello first: {t!r}")

    async def _on_hello(self, node: Node, f: Frame) -> None:
        role = str(f.get("role", "control"))
        if node.role != "unknown":
            raise ValueError("hello twice")
        node.role = role
        node.ident = str(f.get("id", ""))
        if role == "peripheral":
            node.addr = str(f.get("addr") or self._make_addr(node)).upper()
            node.names = {node.ident, node.addr}
            node.board = await BoardHost.start(
                self.air, node.ident, node.addr, int(f.get("mtu", MAX_MTU)), lambda frame: self._answer(node, frame)
            )
            node.controller = node.board.controller
        elif role != "control":
            raise ValueError(f"unknown role {role!r}: peripheral, hci or control")
        log.info("%s joined", node.label)
        self._answer(node, {"t": "welcome", "addr": node.addr, "faults": self.faults.as_dict()})

    def _enforce_range(self) -> None:
        for ends in self.air.links():
            if not self.air.heard(ends.central, ends.peripheral):
                log.warning("fault: out of range: %s", self._describe(ends))
                self.air.drop(ends)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self._tick_once()
            except Exception:  # a defect here must not end the faults for the rest of the run
                log.exception("radio tick failed")

    def _tick_once(self) -> None:
        self._enforce_range()
        if self.faults.disconnect_per_s:
            p = 1.0 - math.pow(1.0 - self.faults.disconnect_per_s, TICK_S)
            for ends in self.air.links():
                if self._disconnect_rng.random() < p:
                    log.warning("fault: random disconnect: %s", self._describe(ends))
                    self._fault_drops += 1
                    self.air.drop(ends)


_BOARD_FRAMES = {"services", "adv", "notify", "indicate", "disconnect", "mtu_pref", "read_rsp", "write_rsp"}


async def _cancel_the_rest() -> None:
    """The loop is the radio's own: end what is still running on it (a board host still starting
    when the radio closed, a client's last read) before the loop closes."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class RadioThread:
    """A :class:`Radio` on its own event loop in a daemon thread, for synchronous code and tests::

        with RadioThread(seed=1) as radio:
            url = radio.url            # "sim://127.0.0.1:PORT"
            radio.set_faults(loss=0.1)
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, faults: Faults | None = None, seed: int = 0):
        self.radio = Radio(host, port, faults=faults, seed=seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stedi-radio", daemon=True)

    @property
    def port(self) -> int:
        return self.radio.port

    @property
    def url(self) -> str:
        return f"sim://{self.radio.host}:{self.radio.port}"

    @property
    def hostport(self) -> str:
        return f"{self.radio.host}:{self.radio.port}"

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def start(self) -> RadioThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.radio.start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.radio.close(), self._loop).result(timeout=10)
        asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call(self.radio.set_faults, **changes)
        return result

    def drop_links(self, target: str | None = None) -> int:
        result: int = self._call(self.radio.drop_links, target)
        return result

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call(self.radio.status)
        return result

    def __enter__(self) -> RadioThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
