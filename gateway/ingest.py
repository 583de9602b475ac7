"""From decoded readings to committed spool rows: pair each reading with the phone's
accelerometer, decide whether it may leave the device, commit, publish telemetry.

Independent of how frames arrive (BLE, the simulator, a benchmark), so every frame source
shares one path to the spool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.accel import AccelError, AccelSource
from gateway.customers import Customer, Customers
from gateway.spool import IngestResult, Row, Spool
from gateway.telemetry import Telemetry

log = logging.getLogger(__name__)

Reading = tuple[int, int, int]  # seq, sensorReadingTime (epoch ms), distance


@dataclass
class IngestCounters:
    readings: int = 0
    duplicates: int = 0
    held: int = 0
    refused_frames: int = 0
    unknown_board_frames: int = 0
    started: float = field(default_factory=time.monotonic)


class Ingest:
    def __init__(
        self,
        spool: Spool,
        accel: AccelSource,
        *,
        telemetry: Telemetry | None = None,
        hold_unconsented: bool = False,
        refresh_s: float = 2.0,
    ):
        self.spool = spool
        self.customers = Customers(spool)
        self.accel = accel
        self.telemetry = telemetry
        self.hold_unconsented = hold_unconsented
        self.refresh_s = refresh_s
        self.counters = IngestCounters()
        self._by_serial: dict[str, Customer] = {}
        self._refreshed = 0.0
        self.refresh()

    def refresh(self) -> None:
        """Re-read customers: `stedi gateway register`/`consent` may run while the gateway does."""
        self._by_serial = self.customers.by_serial()
        self._refreshed = time.monotonic()

    def customer(self, serial: str) -> Customer | None:
        if time.monotonic() - self._refreshed > self.refresh_s:
            self.refresh()
        return self._by_serial.get(serial)

    def add(self, serial: str, boot: int, readings: Sequence[Reading]) -> IngestResult:
        """Commit one frame.  Acknowledge the board up to ``acked_seq`` only after this returns."""
        customer = self.customer(serial)
        if customer is None:
            # Only boards of registered customers are served; a frame from another is not kept.
            self.counters.unknown_board_frames += 1
            return IngestResult(self.spool.watermark(serial, boot), 0, 0, True)
        held = self.hold_unconsented and not customer.consents_to_research
        sample = self.accel.sample
        user = customer.email
        rows: list[Row] = []
        try:
            for seq, t, distance in readings:
                x, y, z = sample(serial, t)
                rows.append((seq, t, distance, user, x, y, z))
        except AccelError as exc:
            # Every reading gets its accelerometer record: without a sample the frame is not
            # kept and not acknowledged, so the board sends it again later.
            self.counters.refused_frames += 1
            log.warning("frame of %s not kept: %s", serial, exc)
            return IngestResult(self.spool.watermark(serial, boot), 0, 0, True)
        result = self.spool.add_readings(serial, boot, rows, held=held)
        c = self.counters
        c.duplicates += result.duplicates
        if result.refused:
            c.refused_frames += 1
            if c.refused_frames in (1, 10, 100) or c.refused_frames % 1000 == 0:
                log.warning("spool full (%d readings): frame of %s not acknowledged; the board keeps it",
                            self.spool.pending, serial)
        elif held:
            c.held += result.accepted
        else:
            c.readings += result.accepted
        if result.accepted and self.telemetry is not None:
            fresh = [r for r in readings if result.acked_seq is not None and r[0] <= result.acked_seq]
            self.telemetry.readings(serial, boot, fresh[-result.accepted:])
        return result
