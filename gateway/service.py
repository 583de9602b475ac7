"""The running gateway: central, ingest, spool, uploader and telemetry wired together.

Shutdown (``--duration`` over, or the first SIGINT/SIGTERM): stop taking readings, commit
and acknowledge what already arrived, upload everything spooled, exit.  A second signal
exits at once; the spool keeps what is left for the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.accel import open_source
from gateway.ble import resolve
from gateway.central import BoardState, Central
from gateway.clock import open_clock
from gateway.config import GatewayConfig
from gateway.ingest import Ingest
from gateway.spool import Spool, now_ms
from gateway.status import GatewayStatus
from gateway.telemetry import MqttSettings, Telemetry
from gateway.uploader import PermanentUploadError, Uploader, UploadSettings, open_gateway_lake
from stedi.errors import EXIT_INTERRUPTED

log = logging.getLogger(__name__)

#: Exit status of a run whose --duration (plus the drain time) ended before the spool was empty.
DRAIN_UNFINISHED = 1


def gateway_id(spool: Spool) -> str:
    """A stable id for this gateway (its MQTT client id and last-will topic)."""
    gid = spool.get_meta("gateway_id")
    if gid is None:
        gid = uuid.uuid4().hex[:12]
        spool.set_meta("gateway_id", gid)
    return gid


def upload_settings(config: GatewayConfig) -> UploadSettings:
    return UploadSettings(batch_bytes=config.batch_bytes, batch_age_s=config.batch_age_s, gzip=config.gzip,
                          sse=config.sse, kms_key_id=config.kms_key_id)


class Gateway:
    def __init__(self, home: Path, config: GatewayConfig):
        self.home = home
        self.config = config
        self.spool = Spool(home, max_readings=config.spool_max_readings, synchronous=config.spool_sync.upper(),
                           commit_delay_s=config.spool_commit_delay_s)
        self.id = gateway_id(self.spool)
        self.lake = open_gateway_lake(config.lake)
        self.uploader = Uploader(self.spool, self.lake, upload_settings(config))
        self.accel = open_source(config.accel, mode=config.accel_mode)  # type: ignore[arg-type]
        self.telemetry: Telemetry | None = None
        if config.mqtt:
            self.telemetry = Telemetry(
                MqttSettings.from_url(config.mqtt, username=config.mqtt_username, password=config.mqtt_password,
                                      ca_file=config.mqtt_ca_file),
                self.id,
            )
        self.ingest = Ingest(self.spool, self.accel, telemetry=self.telemetry,
                             hold_unconsented=config.hold_unconsented)
        self.central = Central(self.ingest, resolve(config.ble), resync_s=config.resync_s,
                               status_s=config.status_s, scan_s=config.scan_s, max_boards=config.max_boards,
                               on_status=self._board_status, clock=open_clock(config.clock))
        self.stop_readings = asyncio.Event()
        self.flush = asyncio.Event()
        self.abort = asyncio.Event()
        self.started = time.monotonic()
        self._rate_window: list[tuple[float, int]] = []
        self.phase = "starting"
        self.error: str | None = None
        self.error_fix: str | None = None  # what a person does about a permanent error

    # ---- status ----------------------------------------------------------------------

    def upload_lag_s(self) -> float:
        """How long the oldest spooled reading has waited since the last upload (0 when empty)."""
        if self.spool.pending == 0:
            return 0.0
        last = self.spool.get_meta("last_upload_ms")
        since = int(last) if last else int((time.time() - (time.monotonic() - self.started)) * 1000)
        return max(0.0, (now_ms() - since) / 1000)

    def _board_status(self, state: BoardState, board: dict[str, Any]) -> None:
        if self.telemetry is None:
            return
        self.telemetry.status(state.serial, {
            "bootId": state.boot_id,
            "battery": state.battery_pct,
            "bufferFill": state.buffer_fill,
            "boardDropped": state.board_dropped,
            "spoolDepth": self.spool.pending,
            "spoolFill": round(self.spool.pending / self.spool.max_readings, 4),
            "uploadLagS": round(self.upload_lag_s(), 1),
            "clockOffsetMs": state.clock_offset_ms,
            "readings": state.readings,
            "badFrames": state.bad_frames,
            "time": now_ms(),
        })

    def snapshot(self) -> GatewayStatus:
        stats = self.spool.stats()
        now = time.monotonic()
        count = self.ingest.counters.readings
        self._rate_window.append((now, count))
        while len(self._rate_window) > 2 and now - self._rate_window[0][0] > 5.0:
            self._rate_window.pop(0)
        t0, c0 = self._rate_window[0]
        rate = (count - c0) / (now - t0) if now > t0 else 0.0  # readings/s over the last ~5 s
        last = stats.last_upload_ms
        return GatewayStatus(
            gateway=self.id,
            phase=self.phase,
            pid=os.getpid(),
            time=now_ms(),
            lake=self.lake.url,
            ble=self.config.ble,
            readings=self.ingest.counters.readings,
            readings_per_s=round(rate, 1),
            duplicates=self.ingest.counters.duplicates,
            held=stats.held,
            spool_depth=stats.pending,
            spool_fill=round(stats.fill, 4),
            spool_cap=stats.max_readings,
            open_batches=stats.batches,
            customer_events=stats.customer_events,
            uploaded_readings=stats.uploaded_readings,
            uploaded_objects=stats.uploaded_objects,
            last_upload_ms=last,
            upload_lag_s=round(self.upload_lag_s(), 1),
            upload_error=self.uploader.stopped_error or self.uploader.last_error,
            error=self.error,
            boards=[b.snapshot() for b in self.central.boards.values()],
        )

    def write_status(self) -> None:
        self.snapshot().write(self.home)

    # ---- life ------------------------------------------------------------------------

    def request_stop(self) -> None:
        """First signal: finish gracefully.  Second: exit at once."""
        if self.stop_readings.is_set():
            log.warning("second stop request: exiting now; the spool keeps %d readings", self.spool.pending)
            self.abort.set()
            return
        log.info("stopping: no new readings; uploading %d spooled readings first", self.spool.pending)
        self.stop_readings.set()

    async def run(self, duration: float | None = None, on_tick: Callable[[Gateway], None] | None = None) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        if self.telemetry is not None:
            self.telemetry.start()
        self.phase = "running"
        log.info("gateway %s: ble %s, lake %s, accel %s, spool %s", self.id, self.config.ble, self.lake.url,
                 self.config.accel, self.spool.path)
        upload_stop = asyncio.Event()
        central = asyncio.create_task(self.central.run(self.stop_readings), name="central")
        uploader = asyncio.create_task(self.uploader.run(upload_stop, self.flush), name="uploader")
        deadline = None if duration is None else time.monotonic() + duration
        # --duration bounds the whole run: after it, uploading what is spooled may take
        # drain_s more, then the gateway stops anyway and the spool keeps the rest.
        drain_deadline = None if deadline is None else deadline + self.config.drain_s
        code = 0
        try:
            while True:
                self.write_status()
                if on_tick is not None:
                    on_tick(self)
                if self.abort.is_set():
                    code = EXIT_INTERRUPTED
                    break
                if uploader.done():
                    exc = uploader.exception()
                    if isinstance(exc, PermanentUploadError):
                        self.error = str(exc)
                        self.error_fix = exc.fix
                        log.error("%s", exc)
                        code = 3
                        break
                    if exc is not None:
                        raise exc
                    break  # drained after a stop
                if drain_deadline is not None and time.monotonic() >= drain_deadline:
                    self.error = (f"--duration {duration:g} s (and {self.config.drain_s:g} s to upload) is over but "
                                  f"the upload did not finish ({self.uploader.last_error or 'still uploading'}); "
                                  f"{self.spool.pending} readings and {len(self.spool.customer_events())} "
                                  "customer records stay in the spool for the next `stedi gateway run`")
                    log.error("%s", self.error)
                    code = DRAIN_UNFINISHED
                    break
                if deadline is not None and time.monotonic() >= deadline and not self.stop_readings.is_set():
                    log.info("duration over: stopping")
                    self.stop_readings.set()
                if self.stop_readings.is_set() and not self.flush.is_set():
                    self.phase = "draining"
                    await asyncio.wait([central], timeout=15)
                    self.flush.set()  # the uploader cuts everything and returns once empty
                await asyncio.sleep(0.5)
        finally:
            self.stop_readings.set()
            upload_stop.set()
            for task in (central, uploader):
                if not task.done():
                    task.cancel()
            await asyncio.gather(central, uploader, return_exceptions=True)
            self.phase = "stopped"
            with contextlib.suppress(OSError):
                self.write_status()
            if on_tick is not None:
                on_tick(self)
            if self.telemetry is not None:
                self.telemetry.stop()
            self.accel.close()
            left = self.spool.pending
            self.spool.close()
            log.info("gateway stopped; %d readings left in the spool", left)
        return code
