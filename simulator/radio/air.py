"""The air: bumble's virtual link between controllers, with the radio's faults and airtime.

bumble's ``LocalLink`` hands advertising PDUs and ACL data from one virtual controller to the
others on the event loop, at once and without loss (bumble models no radio timing).  ``Air``
subclasses it so that the air can go wrong the way a real one does (docs/simulator-radio.md):

- out of range: advertising PDUs between the two ends are not delivered (no scan result, no
  connection: LE Create Connection waits for an advert), and links between them drop;
- loss: an advertising PDU is dropped with the ``loss`` probability (never a CONNECT_IND:
  losing it on a real link only delays the connection);
- latency and jitter: every ACL PDU is delivered that much later, in order per link;
- airtime: per link, at most ``packets_per_event`` ACL PDUs per ``conn_interval_ms``
  (0: unlimited), both directions sharing the connection events, as on a real link;
- forced disconnects: a supervision timeout (HCI error 0x08) told to both controllers, so both
  hosts see the disconnect and drop pending ATT requests.

ACL data is never dropped: a real link layer retransmits until the supervision timeout, so a
lost packet is delay, then a disconnect (the ``disconnect_per_s`` fault).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from bumble import core, hci, ll
from bumble.controller import Connection, Controller
from bumble.link import LocalLink

from simulator.radio.faults import Faults

log = logging.getLogger(__name__)

#: Core Spec Vol 1 Part F 1.3: HCI error code "Connection Timeout" (a supervision timeout).
SUPERVISION_TIMEOUT = 0x08


@dataclass
class Pending:
    """ACL PDUs in flight on one link, oldest first, each with the loop time it arrives."""

    queue: collections.deque[tuple[float, Callable[[], None]]] = field(default_factory=collections.deque)
    air_free_at: float = 0.0  # when the link's next connection-event slot is free
    timer: asyncio.TimerHandle | None = None


@dataclass(frozen=True)
class LinkEnds:
    """Both controllers and their views of one LE connection."""

    central: Controller
    central_conn: Connection
    peripheral: Controller
    peripheral_conn: Connection


class Air(LocalLink):
    """A ``LocalLink`` with faults.  ``names_of(controller)`` gives the ids and addresses a fault
    may name (``out_of_range``); ``rng`` is the radio's seeded generator."""

    def __init__(self, faults: Faults, rng: random.Random, names_of: Callable[[Controller], set[str]]):
        super().__init__()
        self.faults = faults
        self.rng = rng
        self.names_of = names_of
        self._pending: dict[frozenset[int], Pending] = {}
        self.stats: dict[str, int] = {"adv": 0, "lost": 0, "acl": 0, "drops": 0}

    # ------------------------------------------------------------------ who hears whom
    def heard(self, *controllers: Controller) -> bool:
        return not any(self.names_of(c) & self.faults.out_of_range for c in controllers)

    def links(self) -> list[LinkEnds]:
        """Every live LE connection, once (from its central's side)."""
        found = []
        for c in list(self.controllers):
            for conn in list(c.le_connections.values()):
                if conn.role != hci.Role.CENTRAL:
                    continue
                p = self.find_le_controller(conn.peer_address)
                p_conn = p.le_connections.get(conn.self_address) if p is not None else None
                if p is not None and p_conn is not None:
                    found.append(LinkEnds(c, conn, p, p_conn))
        return found

    # ------------------------------------------------------------------ advertising
    def send_advertising_pdu(self, sender_controller: Controller, packet: ll.AdvertisingPdu) -> None:
        loop = asyncio.get_running_loop()
        connect = isinstance(packet, ll.ConnectInd)
        for c in list(self.controllers):
            if c is sender_controller or not self.heard(sender_controller, c):
                continue
            if not connect:
                if self.faults.loss and self.rng.random() < self.faults.loss:
                    self.stats["lost"] += 1
                    continue
                self.stats["adv"] += 1
            loop.call_soon(c.on_ll_advertising_pdu, packet)

    # ------------------------------------------------------------------ data
    def send_acl_data(
        self,
        sender_controller: Controller,
        destination_address: hci.Address,
        transport: core.PhysicalTransport,
        data: bytes,
    ) -> None:
        if transport != core.PhysicalTransport.LE:
            super().send_acl_data(sender_controller, destination_address, transport, data)
            return
        destination = self.find_le_controller(destination_address)
        if destination is None:
            return
        source = sender_controller.le_connections.get(destination_address)
        source_address = source.self_address if source is not None else sender_controller.random_address
        self.stats["acl"] += 1
        # Deliver only onto the connection it was sent on (not a later one between the same two).
        expected = destination.le_connections.get(source_address)

        def deliver() -> None:
            if expected is not None and destination.le_connections.get(source_address) is expected:
                destination.on_link_acl_data(source_address, transport, data)

        loop = asyncio.get_running_loop()
        key = frozenset((id(sender_controller), id(destination)))
        delay = self.faults.latency_ms / 1000.0
        if self.faults.jitter_ms:
            delay += self.rng.uniform(0, self.faults.jitter_ms / 1000.0)
        budget = self.faults.conn_interval_ms > 0
        pending = self._pending.get(key)
        if delay == 0 and not budget and (pending is None or not pending.queue):
            loop.call_soon(deliver)  # the fast path: bumble's own behaviour
            return
        if pending is None:
            pending = self._pending[key] = Pending()
        now = loop.time()
        due = now + delay
        if budget:
            slot = self.faults.conn_interval_ms / 1000.0 / max(1, self.faults.packets_per_event)
            start = max(now, pending.air_free_at)
            pending.air_free_at = start + slot
            due = max(due, start + slot)
        if pending.queue:
            due = max(due, pending.queue[-1][0])  # order kept per link
        pending.queue.append((due, deliver))
        if pending.timer is None:
            pending.timer = loop.call_at(due, self._drain, key)

    def _drain(self, key: frozenset[int]) -> None:
        pending = self._pending.get(key)
        if pending is None:
            return
        pending.timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while pending.queue and pending.queue[0][0] <= now:
            _, deliver = pending.queue.popleft()
            deliver()
        if pending.queue:
            pending.timer = loop.call_at(pending.queue[0][0], self._drain, key)

    # ------------------------------------------------------------------ faults
    def drop(self, ends: LinkEnds, reason: int = SUPERVISION_TIMEOUT) -> None:
        """Both controllers report the link lost (HCI Disconnection Complete), as after a
        supervision timeout; what was still in flight on it is lost with it."""
        pending = self._pending.pop(frozenset((id(ends.central), id(ends.peripheral))), None)
        if pending is not None and pending.timer is not None:
            pending.timer.cancel()
        self.stats["drops"] += 1
        for controller, conn in ((ends.central, ends.central_conn), (ends.peripheral, ends.peripheral_conn)):
            if controller.le_connections.get(conn.peer_address) is conn:
                controller.on_le_disconnected(conn, reason)

    def remove_controller(self, controller: Controller) -> None:
        """A node went away (its process died, its socket closed): its peers see a supervision
        timeout, as a real central does when a board loses power."""
        for ends in self.links():
            if controller in (ends.central, ends.peripheral):
                self.drop(ends)
        if controller in self.controllers:
            super().remove_controller(controller)
