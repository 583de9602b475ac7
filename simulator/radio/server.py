"""The virtual radio: the shared air between virtual boards (peripherals) and gateways (centrals).

Every board's ``bluetooth`` shim and every gateway's bleak backend keeps one TCP connection to
the radio and speaks the JSON-lines protocol of :mod:`simulator.radio.protocol`.  The radio
relays advertisements to scanning centrals, sets up links (one connection handle shared by both
ends), negotiates the MTU, relays reads, writes, notifications and indications, and tears links
down; and it injects the faults of :class:`simulator.radio.faults.Faults`, drawn from one
seeded random generator and logged, so a failing run can be replayed.

Run it with ``stedi sim radio --listen 127.0.0.1:PORT`` or, in Python, ``Radio`` inside an
event loop or ``RadioThread`` beside synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from simulator.radio.faults import Faults
from simulator.radio.protocol import (
    DEFAULT_MTU,
    MAX_FRAME,
    MAX_MTU,
    Frame,
    ProtocolError,
    decode,
    encode,
)

log = logging.getLogger(__name__)

#: How often the air ticks: advertisements go out and random disconnects are drawn.
TICK_S = 0.1
#: Advertising interval floor, so a board advertising every 20 ms does not flood the centrals.
MIN_ADV_INTERVAL_S = 0.1


@dataclass(eq=False)
class Node:
    """One TCP client of the radio: a board (peripheral), a gateway (central) or a controller."""

    writer: asyncio.StreamWriter
    number: int
    role: str = "unknown"
    ident: str = ""
    addr: str = ""
    addr_type: int = 0
    mtu: int = MAX_MTU
    # peripheral
    adv: bytes | None = None
    resp: bytes = b""
    adv_interval_s: float = MIN_ADV_INTERVAL_S
    connectable: bool = True
    next_adv: float = 0.0
    services: list[Any] = field(default_factory=list)
    # central
    scanning: bool = False
    # delivery in order, each frame no earlier than its due time (latency)
    outbox: asyncio.Queue[tuple[float, bytes]] = field(default_factory=asyncio.Queue)
    sender: asyncio.Task[None] | None = None

    @property
    def label(self) -> str:
        return f"{self.role} {self.ident or '#' + str(self.number)} ({self.addr})"

    def names(self) -> set[str]:
        return {self.ident, self.addr, self.addr.lower()}


@dataclass(eq=False)
class Link:
    conn: int
    central: Node
    peripheral: Node
    mtu: int = DEFAULT_MTU


class Radio:
    """The air.  ``await start()`` listens (``port=0`` picks a free port, see ``.port``);
    ``await close()`` drops every link and client."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, faults: Faults | None = None, seed: int = 0):
        self.host = host
        self._requested_port = port
        self.faults = faults or Faults()
        self.seed = seed
        self._rng = random.Random(seed)
        self._nodes: list[Node] = []
        self._links: dict[int, Link] = {}
        self._pending: dict[int, tuple[Node, Any, int]] = {}
        self._connecting: list[tuple[Node, Frame, float]] = []
        self._numbers = itertools.count(1)
        self._conns = itertools.count(1)
        self._requests = itertools.count(1)
        self._server: asyncio.base_events.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.port = 0
        #: Counters for tests and the log: frames relayed, lost (of them notifications), links
        #: made and dropped (of them by the random-disconnect fault).
        self.stats: dict[str, int] = {"adv": 0, "notify": 0, "lost": 0, "lost_notify": 0, "links": 0, "drops": 0,
                                      "fault_drops": 0}

    # ---------------------------------------------------------------- life cycle
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self._requested_port, limit=MAX_FRAME)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick())
        log.info("radio listening on %s:%d (seed %d, faults %s)", self.host, self.port, self.seed, self.faults.as_dict())

    async def close(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        for link in list(self._links.values()):
            self._drop(link, "radio shut down")
        if self._server:
            self._server.close()
        for node in list(self._nodes):
            node.writer.close()
            if node.sender:
                node.sender.cancel()
        if self._server:
            await self._server.wait_closed()
        log.info("radio closed: %s", self.stats)

    # ---------------------------------------------------------------- faults (run time)
    def set_faults(self, **changes: Any) -> dict[str, Any]:
        self.faults.update(changes)
        log.warning("faults set: %s", self.faults.as_dict())
        self._enforce_range()
        return self.faults.as_dict()

    def drop_links(self, target: str | None = None, reason: str = "link dropped (fault)") -> int:
        """Drop every link (or those of the board/central whose id or address is ``target``)
        as a supervision timeout would: both ends are told."""
        dropped = 0
        for link in list(self._links.values()):
            if target is None or target in link.peripheral.names() or target in link.central.names():
                self._drop(link, reason)
                dropped += 1
        return dropped

    def status(self) -> dict[str, Any]:
        return {
            "nodes": [
                {"role": n.role, "id": n.ident, "addr": n.addr, "advertising": n.adv is not None} for n in self._nodes
            ],
            "links": [
                {"conn": lk.conn, "central": lk.central.addr, "peripheral": lk.peripheral.addr, "mtu": lk.mtu}
                for lk in self._links.values()
            ],
            "faults": self.faults.as_dict(),
            "stats": dict(self.stats),
        }

    # ---------------------------------------------------------------- plumbing
    def _heard(self, *nodes: Node) -> bool:
        return not any(n.names() & self.faults.out_of_range for n in nodes)

    def _lost(self, what: str) -> bool:
        if self.faults.loss and self._rng.random() < self.faults.loss:
            self.stats["lost"] += 1
            log.debug("fault: %s lost", what)
            return True
        return False

    def _send(self, node: Node, frame: Frame) -> None:
        delay = self.faults.latency_ms / 1000.0
        if self.faults.jitter_ms:
            delay += self._rng.uniform(0, self.faults.jitter_ms / 1000.0)
        node.outbox.put_nowait((time.monotonic() + delay, encode(frame)))

    async def _deliver(self, node: Node) -> None:
        try:
            while True:
                due, data = await node.outbox.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                node.writer.write(data)
                await node.writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        node = Node(writer=writer, number=next(self._numbers))
        node.sender = asyncio.create_task(self._deliver(node))
        self._nodes.append(node)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    log.error("%s sent a frame over %d bytes; closing it", node.label, MAX_FRAME)
                    break
                except ConnectionError:
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    self._handle(node, decode(line))
                except (ProtocolError, KeyError, TypeError, ValueError) as exc:
                    log.warning("bad frame from %s: %s", node.label, exc)
                    self._send(node, {"t": "error", "error": str(exc)})
        finally:
            self._nodes.remove(node)
            for link in list(self._links.values()):
                if node in (link.central, link.peripheral):
                    self._drop(link, f"{node.role} went away")
            log.info("%s left", node.label)
            # Let queued frames go out (e.g. an error) before closing.
            await asyncio.sleep(0)
            if node.sender:
                node.sender.cancel()
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    # ---------------------------------------------------------------- frames
    def _handle(self, node: Node, f: Frame) -> None:
        t = f["t"]
        log.debug("<- %s %s", node.label, f)
        handler = getattr(self, "_on_" + t, None)
        if handler is None:
            raise ValueError(f"unknown frame type {t!r}")
        if node.role == "unknown" and t not in ("hello", "faults", "drop", "status"):
            raise ValueError(f"say hello first: {t!r} needs a role")
        handler(node, f)

    def _on_hello(self, node: Node, f: Frame) -> None:
        node.role = str(f.get("role", "central"))
        node.ident = str(f.get("id", ""))
        node.addr = str(f.get("addr") or self._make_addr(node))
        node.addr_type = int(f.get("addr_type", 0))
        node.mtu = max(DEFAULT_MTU, min(MAX_MTU, int(f.get("mtu", MAX_MTU))))
        log.info("%s joined", node.label)
        self._send(node, {"t": "welcome", "addr": node.addr, "faults": self.faults.as_dict()})

    def _make_addr(self, node: Node) -> str:
        # Random static address (top bits 11, Core Spec Vol 6 Part B 1.3.2.1), unique per client.
        n = node.number
        return f"C0:5E:D1:{(n >> 16) & 0xFF:02X}:{(n >> 8) & 0xFF:02X}:{n & 0xFF:02X}"

    def _on_faults(self, node: Node, f: Frame) -> None:
        changes = {k: v for k, v in f.items() if k != "t"}
        self._send(node, {"t": "faults_ok", "faults": self.set_faults(**changes)})

    def _on_drop(self, node: Node, f: Frame) -> None:
        n = self.drop_links(f.get("target"))
        self._send(node, {"t": "drop_ok", "dropped": n})

    def _on_status(self, node: Node, f: Frame) -> None:
        self._send(node, {"t": "status", **self.status()})

    # peripheral side
    def _on_adv(self, node: Node, f: Frame) -> None:
        adv = f.get("adv")
        if adv is None:
            node.adv = None
            log.info("%s stops advertising", node.label)
            return
        node.adv = bytes.fromhex(adv)
        node.resp = bytes.fromhex(f.get("resp") or "")
        node.adv_interval_s = max(MIN_ADV_INTERVAL_S, int(f.get("interval_us", 100000)) / 1e6)
        node.connectable = bool(f.get("connectable", True))
        node.next_adv = 0.0
        self._try_connects()
        log.info("%s advertises every %.0f ms", node.label, node.adv_interval_s * 1000)

    def _on_services(self, node: Node, f: Frame) -> None:
        node.services = list(f["services"])
        log.info("%s registered %d service(s)", node.label, len(node.services))

    def _on_mtu_pref(self, node: Node, f: Frame) -> None:
        node.mtu = max(DEFAULT_MTU, min(MAX_MTU, int(f["mtu"])))

    def _link_of(self, node: Node, conn: int) -> Link | None:
        link = self._links.get(int(conn))
        if link is None or node not in (link.central, link.peripheral):
            return None
        return link

    def _on_notify(self, node: Node, f: Frame) -> None:
        link = self._link_of(node, f["conn"])
        if link is None:
            return  # the link dropped while the frame was in flight: lost, like on air
        self.stats["notify"] += 1
        if self._lost(f"notification on conn {link.conn}"):
            self.stats["lost_notify"] += 1
            return
        self._send(link.central, {"t": "notify", "conn": link.conn, "h": f["h"], "d": f.get("d", "")})

    def _on_indicate(self, node: Node, f: Frame) -> None:
        link = self._link_of(node, f["conn"])
        if link is None:
            self._send(node, {"t": "indicate_done", "conn": f["conn"], "h": f["h"], "status": 19})
            return
        self._send(link.central, {"t": "notify", "conn": link.conn, "h": f["h"], "d": f.get("d", ""), "ind": True})
        self._send(node, {"t": "indicate_done", "conn": link.conn, "h": f["h"], "status": 0})

    def _on_rsp(self, node: Node, f: Frame) -> None:
        pending = self._pending.pop(int(f["id"]), None)
        if pending is None:
            return
        central, cid, conn = pending
        out = dict(f)
        out["id"] = cid
        out["conn"] = conn
        self._send(central, out)

    _on_read_rsp = _on_rsp
    _on_write_rsp = _on_rsp

    # central side
    def _on_scan(self, node: Node, f: Frame) -> None:
        node.scanning = bool(f.get("on", True))
        log.info("%s %s scanning", node.label, "starts" if node.scanning else "stops")

    def _on_connect(self, node: Node, f: Frame) -> None:
        # Like an LE Create Connection: the central waits for a connectable advertisement from
        # the address, until its timeout (a board may be rebooting or re-advertising).
        timeout = float(f.get("timeout", 10.0))
        self._connecting.append((node, f, time.monotonic() + max(0.0, timeout)))
        self._try_connects()

    def _try_connects(self) -> None:
        now = time.monotonic()
        waiting = []
        for node, f, deadline in self._connecting:
            if node not in self._nodes:
                continue
            target = str(f["addr"])
            peripheral = next((n for n in self._nodes if n.role == "peripheral" and target in n.names()), None)
            if (
                peripheral is not None
                and peripheral.adv is not None
                and peripheral.connectable
                and self._heard(node, peripheral)
            ):
                self._link_up(node, f, peripheral)
            elif now >= deadline:
                if peripheral is None:
                    error = f"no peripheral {target} on the air"
                elif not self._heard(node, peripheral):
                    error = f"{target} is out of range"
                else:
                    error = f"{target} is not advertising connectably"
                log.info("%s cannot connect: %s", node.label, error)
                self._send(node, {"t": "connect_rsp", "id": f.get("id"), "error": error})
            else:
                waiting.append((node, f, deadline))
        self._connecting = waiting

    def _link_up(self, node: Node, f: Frame, peripheral: Node) -> None:
        link = Link(conn=next(self._conns), central=node, peripheral=peripheral)
        self._links[link.conn] = link
        self.stats["links"] += 1
        # A peripheral stops advertising once connected (as NimBLE/BTstack do); the firmware
        # advertises again after the disconnect.
        peripheral.adv = None
        log.info("link %d: %s -> %s", link.conn, node.label, peripheral.label)
        self._send(peripheral, {"t": "connect", "conn": link.conn, "addr": node.addr, "addr_type": node.addr_type})
        self._send(
            node,
            {
                "t": "connect_rsp",
                "id": f.get("id"),
                "conn": link.conn,
                "addr": peripheral.addr,
                "name": peripheral.ident,
                "services": peripheral.services,
                "mtu": link.mtu,
            },
        )

    def _on_mtu(self, node: Node, f: Frame) -> None:
        link = self._link_of(node, f["conn"])
        if link is None:
            self._send(node, {"t": "mtu_rsp", "id": f.get("id"), "error": "not connected"})
            return
        link.mtu = max(DEFAULT_MTU, min(int(f["mtu"]), link.central.mtu, link.peripheral.mtu))
        log.info("link %d: MTU %d", link.conn, link.mtu)
        self._send(link.peripheral, {"t": "mtu", "conn": link.conn, "mtu": link.mtu})
        self._send(node, {"t": "mtu_rsp", "id": f.get("id"), "mtu": link.mtu})

    def _forward_request(self, node: Node, f: Frame) -> None:
        link = self._link_of(node, f["conn"])
        kind = f["t"]
        if link is None:
            self._send(node, {"t": kind + "_rsp", "id": f.get("id"), "error": "not connected"})
            return
        if kind == "write" and not f.get("rsp") and self._lost(f"write without response on conn {link.conn}"):
            return
        rid = next(self._requests)
        if kind == "read" or f.get("rsp"):
            self._pending[rid] = (node, f.get("id"), link.conn)
        out = dict(f)
        out["id"] = rid
        self._send(link.peripheral, out)

    _on_read = _forward_request
    _on_write = _forward_request

    def _on_disconnect(self, node: Node, f: Frame) -> None:
        link = self._link_of(node, f["conn"])
        if link is not None:
            self._drop(link, f"{node.role} disconnected")

    # ---------------------------------------------------------------- links and the air
    def _drop(self, link: Link, reason: str) -> None:
        if self._links.pop(link.conn, None) is None:
            return
        self.stats["drops"] += 1
        log.info("link %d dropped: %s", link.conn, reason)
        for rid, (central, cid, conn) in list(self._pending.items()):
            if conn == link.conn:
                del self._pending[rid]
                self._send(central, {"t": "rsp_error", "id": cid, "conn": conn, "error": "disconnected"})
        for end in (link.central, link.peripheral):
            if end in self._nodes:
                self._send(end, {"t": "disconnect", "conn": link.conn, "reason": reason})

    def _enforce_range(self) -> None:
        for link in list(self._links.values()):
            if not self._heard(link.central, link.peripheral):
                log.warning("fault: link %d out of range", link.conn)
                self._drop(link, "out of range (supervision timeout)")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            self._enforce_range()
            if self._connecting:
                self._try_connects()
            if self.faults.disconnect_per_s:
                p = 1.0 - math.pow(1.0 - self.faults.disconnect_per_s, TICK_S)
                for link in list(self._links.values()):
                    if self._rng.random() < p:
                        log.warning("fault: random disconnect of link %d", link.conn)
                        self.stats["fault_drops"] += 1
                        self._drop(link, "supervision timeout (random fault)")
            scanners = [n for n in self._nodes if n.scanning]
            for p_node in self._nodes:
                if p_node.adv is None or now < p_node.next_adv:
                    continue
                p_node.next_adv = now + p_node.adv_interval_s
                for c in scanners:
                    if not self._heard(c, p_node) or self._lost(f"advertisement of {p_node.ident}"):
                        continue
                    self.stats["adv"] += 1
                    self._send(
                        c,
                        {
                            "t": "adv",
                            "addr": p_node.addr,
                            "addr_type": p_node.addr_type,
                            "id": p_node.ident,
                            "adv": p_node.adv.hex(),
                            "resp": p_node.resp.hex(),
                            "connectable": p_node.connectable,
                            "rssi": -40 - self._rng.randrange(30),
                        },
                    )


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
