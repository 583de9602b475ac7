"""The air: bumble's virtual link between controllers, with the radio's faults and airtime.

bumble's ``LocalLink`` hands advertising PDUs and ACL data from one virtual controller to the
others on the event loop, at once and without loss (bumble models no radio timing).  ``Air``
subclasses it so that the air can go wrong the way a real one does (docs/simulator-radio.md):

- out of range: advertising PDUs between the two ends are not delivered (no scan result, no
  connection: LE Create Connection waits for an advert), and links between them drop;
- loss: an advertising PDU is dropped with the ``loss`` probability (never a CONNECT_IND:
  losing it on a real link only delays the connection); a data packet is "lost" with the same
  probability per attempt and retransmitted at the next connection event (Core Spec Vol 6
  Part B 4.5.9: acknowledgement and flow control), so loss on a link is delay, in order;
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
#: Retransmission delay of a lost data packet when no airtime budget sets the connection
#: interval: 7.5 ms, the shortest connection interval (Core Spec Vol 6 Part B 4.5.1).
RETRANSMIT_MS = 7.5
#: Retransmissions of one packet at most (a real link would reach its supervision timeout).
MAX_RETRANSMITS = 16


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


class AirController(Controller):
    """bumble's virtual controller, with the one HCI rule the hub needs that it skips."""

    def on_hci_le_create_connection_cancel_command(
        self, command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        # Core Spec Vol 4 Part E 7.8.13: after a successful cancel the controller sends an LE
        # Connection Complete event with status Unknown Connection Identifier (0x02).  bumble's
        # controller only answers the command, and its host then waits for that event forever.
        pending = getattr(self, "pending_le_connection", None)
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        result = hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)
        asyncio.get_running_loop().call_soon(
            self.send_hci_packet,
            hci.HCI_LE_Connection_Complete_Event(
                status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
                connection_handle=0,
                role=hci.Role.CENTRAL,
                peer_address_type=pending.peer_address.address_type,
                peer_address=pending.peer_address,
                connection_interval=0,
                peripheral_latency=0,
                supervision_timeout=0,
                central_clock_accuracy=0,
            ),
        )
        return result


    def on_hci_le_set_extended_scan_parameters_command(
        self, command: hci.HCI_LE_Set_Extended_Scan_Parameters_Command
    ) -> hci.HCI_StatusReturnParameters:
        # bumble's controller forgets the scan type here (Vol 4 Part E 7.8.64); keep it, so an
        # active scanner gets scan responses and a passive one does not.
        result = super().on_hci_le_set_extended_scan_parameters_command(command)
        types = list(getattr(command, "scan_types", []) or [])
        self.le_scan_type = int(types[0]) if types else 0
        return result

    def on_air_advert(self, advert: Advert) -> None:
        """An advertising event heard: the advert and, to an active scanner, the scan response
        (SCAN_REQ/SCAN_RSP, Core Spec Vol 6 Part B 2.3.2), reported as legacy PDUs (Vol 4 Part
        E 7.7.65.13); then a pending LE Create Connection to it goes ahead.  (bumble's own
        controller repeats the advert's data as the scan response and ignores connectability.)"""
        if self.le_scan_enable:
            legacy = hci.HCI_LE_Extended_Advertising_Report_Event.EventType.LEGACY_ADVERTISING_PDU_USED
            kind = legacy | hci.HCI_LE_Extended_Advertising_Report_Event.EventType.SCANNABLE_ADVERTISING
            if advert.connectable:
                kind |= hci.HCI_LE_Extended_Advertising_Report_Event.EventType.CONNECTABLE_ADVERTISING
            reports = [(kind, advert.data)]
            if self.le_scan_type == 1:  # active scanning (Vol 4 Part E 7.8.10)
                reports.append((kind | hci.HCI_LE_Extended_Advertising_Report_Event.EventType.SCAN_RESPONSE,
                                advert.scan_response))
            for event_type, data in reports:
                report = hci.HCI_LE_Extended_Advertising_Report_Event.Report(
                    event_type=event_type,
                    address_type=advert.address.address_type,
                    address=advert.address,
                    primary_phy=hci.Phy.LE_1M,
                    secondary_phy=0,
                    advertising_sid=0xFF,
                    tx_power=0x7F,
                    rssi=advert.rssi,
                    periodic_advertising_interval=0,
                    direct_address_type=0,
                    direct_address=hci.Address.ANY,
                    data=data,
                )
                self.send_hci_packet(hci.HCI_LE_Extended_Advertising_Report_Event([report]))
        pending = getattr(self, "pending_le_connection", None)
        if advert.connectable and pending is not None and pending.peer_address == advert.address:
            self.create_le_connection(advert.address)


@dataclass(frozen=True)
class Advert:
    """One legacy advertising event as a scanner hears it."""

    address: hci.Address
    data: bytes
    scan_response: bytes
    connectable: bool
    rssi: int


class Air(LocalLink):
    """A ``LocalLink`` with faults.  ``names_of(controller)`` gives the ids and addresses a fault
    may name (``out_of_range``); ``rng`` is the radio's seeded generator."""

    def __init__(self, faults: Faults, rng: random.Random, names_of: Callable[[Controller], set[str]]):
        super().__init__()
        self.faults = faults
        self.rng = rng
        self.names_of = names_of
        self._pending: dict[frozenset[int], Pending] = {}
        self.stats: dict[str, int] = {"adv": 0, "lost": 0, "acl": 0, "drops": 0, "lost_in_flight": 0}

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

    def lost(self) -> bool:
        """One draw of the ``loss`` fault (seeded)."""
        if self.faults.loss and self.rng.random() < self.faults.loss:
            self.stats["lost"] += 1
            return True
        return False

    # ------------------------------------------------------------------ advertising
    def send_advertising_pdu(self, sender_controller: Controller, packet: ll.AdvertisingPdu) -> None:
        loop = asyncio.get_running_loop()
        advert = self._advert(sender_controller, packet)
        for c in list(self.controllers):
            if c is sender_controller or not self.heard(sender_controller, c):
                continue
            if isinstance(packet, ll.ConnectInd):
                loop.call_soon(c.on_ll_advertising_pdu, packet)
                continue
            if not c.le_scan_enable and getattr(c, "pending_le_connection", None) is None:
                continue  # nobody listening on that controller
            if self.lost():
                continue
            self.stats["adv"] += 1
            if advert is not None and isinstance(c, AirController):
                loop.call_soon(c.on_air_advert, advert)
            else:
                loop.call_soon(c.on_ll_advertising_pdu, packet)

    def _advert(self, sender: Controller, packet: ll.AdvertisingPdu) -> Advert | None:
        """The advertising event behind an AdvInd/AdvExtInd, with the advertiser's scan response
        and whether it is connectable (legacy advertising only, as the boards use)."""
        if not isinstance(packet, (ll.AdvInd, ll.AdvExtInd)):
            return None
        address = packet.advertiser_address
        legacy = sender.le_legacy_advertiser
        if legacy.enabled and legacy.address == address:
            # Vol 4 Part E 7.8.5: advertising type 0x00 ADV_IND is the connectable undirected one.
            return Advert(address, bytes(legacy.advertising_data), bytes(legacy.scan_response_data),
                          legacy.advertising_type == 0, self._rssi())
        for adv_set in sender.advertising_sets.values():
            if adv_set.enabled and adv_set.address == address and adv_set.parameters is not None:
                props = int(adv_set.parameters.advertising_event_properties)
                return Advert(address, bytes(adv_set.data), bytes(adv_set.scan_response_data),
                              bool(props & 1), self._rssi())
        return None

    def _rssi(self) -> int:
        return -40 - self.rng.randrange(30)

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
        interval_s = (self.faults.conn_interval_ms or RETRANSMIT_MS) / 1000.0
        for _attempt in range(MAX_RETRANSMITS):  # (loss 1.0 would otherwise never deliver)
            if not self.lost():
                break
            delay += interval_s  # not acknowledged: sent again at the next connection event
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
        if pending is not None:
            if pending.timer is not None:
                pending.timer.cancel()
            self.stats["lost_in_flight"] += len(pending.queue)
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
