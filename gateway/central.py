"""The BLE central: finds STEDI boards, serves those of registered customers, several at once.

Per board, one task keeps a connection (bleak-retry-connector where it imports, else bleak's
own connect with a bounded retry: gateway/connect.py; reconnect with backoff);
per connection one notify subscription (readings), one task that commits frames and
acknowledges them, one that polls the board's status and re-syncs its clock.  The
protocol (frames, control writes, status) comes from the firmware's shared module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from firmware.board import stedi_protocol as proto
from gateway.ble import BleBackend, explain_scan_error
from gateway.clock import SystemClock, WallClock
from gateway.ingest import Ingest
from gateway.scan_rate import ScanStartLimiter
from gateway.status import BoardStatus

log = logging.getLogger(__name__)


def _set_event(event: asyncio.Event, _client: Any) -> None:
    event.set()

SERIAL_NUMBER_UUID = proto.uuid16_str(proto.SERIAL_NUMBER_CHAR)  # Device Information, 0x2A25
FRAME_QUEUE = 1024  # frames waiting for the spool; more are dropped and come again via RESUME
#: A wall-clock step larger than this between two status polls (against the monotonic clock)
#: is a jump of the phone's clock: the board is re-synced at once.
CLOCK_JUMP_MS = 2000


@dataclass
class BoardState(BoardStatus):
    """What the gateway knows about one board, kept up to date while it is served (its figures
    go to MQTT after each status poll, its snapshots to the gateway's status file)."""

    _lateness: list[int] = field(default_factory=list)  # recent frames' lateness (ms): the clock offset


class Central:
    def __init__(
        self,
        ingest: Ingest,
        backend: BleBackend,
        *,
        resync_s: float = 600.0,
        status_s: float = 5.0,
        scan_s: float = 3.0,
        max_boards: int = 7,
        on_status: Any = None,
        clock: WallClock | None = None,
        scan_starts: ScanStartLimiter | None = None,
    ):
        self.ingest = ingest
        self.clock: WallClock = clock or SystemClock()
        self.backend = backend
        self.resync_s = resync_s
        self.status_s = status_s
        self.scan_s = scan_s
        self.max_boards = max_boards
        #: Every scan start is counted here first (Android's scan throttling: gateway/scan_rate.py).
        self.scan_starts = scan_starts or ScanStartLimiter()
        self.on_status = on_status  # called with (BoardState, status dict) after each status poll
        self.boards: dict[str, BoardState] = {}  # by serial
        self._serving: dict[str, asyncio.Task[None]] = {}  # by address
        self._serial_of: dict[str, str] = {}  # address -> serial, learned once per address

    # ---- scanning --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Scan and serve until ``stop``; then disconnect every board."""
        from bleak import BleakScanner

        try:
            while not stop.is_set():
                # Also after a failed scan: a fast retry loop is what trips Android's throttle.
                if not await self.scan_starts.acquire(stop):
                    break
                try:
                    found = await BleakScanner.discover(
                        timeout=self.scan_s, service_uuids=[proto.SERVICE_UUID], **self.backend.scanner_kwargs
                    )
                except Exception as exc:  # noqa: BLE001 - an adapter hiccup must not end the gateway
                    log.warning("scan failed: %s; trying again", explain_scan_error(exc))
                    found = []
                for device in found:
                    self._maybe_serve(device, stop)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.scan_s)
        finally:
            # Give each board a moment to commit and acknowledge the frames already received.
            tasks = [t for t in self._serving.values() if not t.done()]
            if tasks:
                _done, late = await asyncio.wait(tasks, timeout=5.0)
                for task in late:
                    task.cancel()
            await asyncio.gather(*self._serving.values(), return_exceptions=True)

    def _maybe_serve(self, device: Any, stop: asyncio.Event) -> None:
        task = self._serving.get(device.address)
        if task is not None and not task.done():
            return
        serial = self._serial_of.get(device.address)
        if serial is not None and self.ingest.customer(serial) is None:
            return  # known board of no registered customer: not served (checked again each scan)
        if sum(1 for t in self._serving.values() if not t.done()) >= self.max_boards:
            return
        self._serving[device.address] = asyncio.create_task(self._serve(device, stop), name=f"board {device.address}")

    # ---- one board -------------------------------------------------------------------

    async def _serve(self, device: Any, stop: asyncio.Event) -> None:
        """Keep one board connected until stop; reconnect with backoff and jitter."""
        from bleak import BleakClient

        from gateway.connect import establish

        attempt = 0
        while not stop.is_set():
            disconnected = asyncio.Event()
            client = None
            try:
                client = await establish(
                    BleakClient, device, device.name or device.address,
                    disconnected_callback=partial(_set_event, disconnected),
                    max_attempts=3, **self.backend.client_kwargs,
                )
                serial = (await client.read_gatt_char(SERIAL_NUMBER_UUID)).decode().strip()
                self._serial_of[device.address] = serial
                if self.ingest.customer(serial) is None:
                    log.info("board %s (%s) belongs to no registered customer: not served", serial, device.address)
                    return
                attempt = 0
                await self._session(client, serial, device.address, stop, disconnected)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any link failure means: reconnect later
                log.warning("board %s: %s: %s", device.address, type(exc).__name__, exc)
            finally:
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.disconnect()
                state = self.boards.get(self._serial_of.get(device.address, ""))
                if state is not None:
                    state.connected = False
            if stop.is_set():
                return
            delay = random.uniform(0, min(30.0, 0.5 * 2**attempt))
            attempt += 1
            log.info("board %s: reconnecting in %.1fs", device.address, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _session(
        self, client: Any, serial: str, address: str, stop: asyncio.Event, disconnected: asyncio.Event
    ) -> None:
        state = self.boards.setdefault(serial, BoardState(serial, address))
        state.address = address
        state.connects += 1
        status = proto.decode_status(await client.read_gatt_char(proto.STATUS_UUID))
        boot = status["boot_id"]
        state.boot_id = boot
        self._apply_status(state, status)
        frames: asyncio.Queue[bytes] = asyncio.Queue(FRAME_QUEUE)

        def on_frame(_char: Any, data: bytearray) -> None:
            try:
                frames.put_nowait(bytes(data))
            except asyncio.QueueFull:
                state.gaps += 1  # the gap shows at the next frame and is asked for again

        # Exactly one notify subscription per connection: the readings.  Status is polled.
        await client.start_notify(proto.READINGS_UUID, on_frame)
        # RESUME before TIME_SYNC: streaming starts with the sync, already from the right place,
        # so what the spool holds is not sent over the air again.
        mark = self.ingest.spool.watermark(serial, boot)
        if mark is not None:
            await client.write_gatt_char(proto.CONTROL_UUID, proto.encode_resume((mark + 1) & proto.SEQ_MASK, boot),
                                         response=True)
            state.resumes += 1
        await self._time_sync(client, state)
        log.info("board %s connected: boot %d, resuming after seq %s, board holds %d readings",
                 serial, boot, mark, status["fill"])
        state.connected = True
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(self._commit_frames(client, state, frames), name=f"{serial} frames"),
            asyncio.create_task(self._keep_status(client, state), name=f"{serial} status"),
        ]
        waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait()), asyncio.create_task(disconnected.wait())]
        try:
            done, _ = await asyncio.wait(tasks + waiters, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t in tasks and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            if stop.is_set():
                # Stop taking readings, but commit and acknowledge what already arrived.
                with contextlib.suppress(Exception):
                    await client.stop_notify(proto.READINGS_UUID)
                while not frames.empty() and not tasks[0].done():
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.1)  # the last frame taken from the queue: commit and ACK
        finally:
            for t in tasks + waiters:
                t.cancel()
            await asyncio.gather(*tasks, *waiters, return_exceptions=True)
            state.connected = False
            log.info("board %s disconnected", serial)

    async def _time_sync(self, client: Any, state: BoardState) -> None:
        t0 = time.monotonic()
        await client.write_gatt_char(proto.CONTROL_UUID, proto.encode_time_sync(self.clock.now_ms()), response=True)
        state.sync_rtt_ms = (time.monotonic() - t0) * 1000
        state._lateness.clear()
        state.clock_offset_ms = None
        log.info("board %s: clock set (write took %.1f ms)", state.serial, state.sync_rtt_ms)

    async def _commit_frames(self, client: Any, state: BoardState, frames: asyncio.Queue[bytes]) -> None:
        spool = self.ingest.spool
        resume_asked: tuple[int, float] | None = None  # (seq, when) of the last RESUME written
        while True:
            data = await frames.get()
            received = self.clock.now_ms()
            try:
                boot, first, readings = proto.decode_batch(data)
            except ValueError as exc:
                state.bad_frames += 1
                log.warning("board %s: bad frame #%d (%s); its readings come again", state.serial,
                            state.bad_frames, exc)
                continue
            if boot != state.boot_id:
                state.stale_frames += 1
                log.warning("board %s: frame of boot %d while connected to boot %s: ignored",
                            state.serial, boot, state.boot_id)
                continue
            mark = spool.watermark(state.serial, boot)
            expected = 0 if mark is None else (mark + 1) & proto.SEQ_MASK
            if first > expected:
                # A gap: frames were lost on this side, or the board dropped them (full buffer).
                # Also before anything of this boot is spooled: a lost first frame is a gap too.
                if await self._board_dropped(client, expected):
                    state.gaps += 1
                    log.warning("board %s: seq %d-%d were dropped by the board", state.serial, expected, first - 1)
                else:
                    now = time.monotonic()
                    if resume_asked is None or resume_asked[0] != expected or now - resume_asked[1] > 2.0:
                        await client.write_gatt_char(proto.CONTROL_UUID, proto.encode_resume(expected, boot),
                                                     response=False)
                        resume_asked = (expected, now)
                        state.resumes += 1
                    continue
            result = self.ingest.add(state.serial, boot, readings)
            state.duplicates += result.duplicates
            if result.refused or result.acked_seq is None:
                continue  # not kept: not acknowledged, the board keeps it
            state.readings += result.accepted
            state.last_frame = time.monotonic()
            first_estimate = state.clock_offset_ms is None
            self._note_lateness(state, received - readings[-1][1])
            if first_estimate:
                log.info("board %s: clock offset about %d ms (gateway clock minus the board's stamp of its "
                         "freshest reading, batching delay included)", state.serial, state.clock_offset_ms)
            await client.write_gatt_char(proto.CONTROL_UUID, proto.encode_ack(result.acked_seq, boot), response=False)

    async def _board_dropped(self, client: Any, expected: int) -> bool:
        status = proto.decode_status(await client.read_gatt_char(proto.STATUS_UUID))
        return bool(expected < status["next_seq"] - status["fill"])

    def _note_lateness(self, state: BoardState, late_ms: int) -> None:
        # The freshest reading of a frame reaches us after batching and radio delay; the least
        # lateness over recent frames estimates how far the board's clock is from ours.
        state._lateness.append(late_ms)
        if len(state._lateness) > 50:
            del state._lateness[0]
        state.clock_offset_ms = min(state._lateness)

    async def _keep_status(self, client: Any, state: BoardState) -> None:
        last_sync = time.monotonic()
        wall, mono = self.clock.now_ms(), time.monotonic()
        while True:
            await asyncio.sleep(self.status_s)
            status = proto.decode_status(await client.read_gatt_char(proto.STATUS_UUID))
            if status["boot_id"] != state.boot_id:
                # The board renewed its boot (its seqs ran out) or reset without the link noticing:
                # reconnect, so that the session starts over with the new boot id.
                raise ConnectionError(f"board now runs boot {status['boot_id']}, not {state.boot_id}")
            self._apply_status(state, status)
            if self.on_status is not None:
                self.on_status(state, status)
            # The phone's clock may jump (NTP, the user): readings are stamped by the board from
            # the last sync, so the board follows the phone's clock at once, not at the next re-sync.
            now_wall, now_mono = self.clock.now_ms(), time.monotonic()
            jump = (now_wall - wall) - (now_mono - mono) * 1000
            wall, mono = now_wall, now_mono
            if abs(jump) > CLOCK_JUMP_MS:
                log.warning("board %s: the wall clock jumped by %+.1f s: re-syncing the board's clock",
                            state.serial, jump / 1000)
                await self._time_sync(client, state)
                last_sync = time.monotonic()
            elif time.monotonic() - last_sync >= self.resync_s:
                log.info("board %s: clock offset before re-sync %s ms", state.serial, state.clock_offset_ms)
                await self._time_sync(client, state)
                last_sync = time.monotonic()

    @staticmethod
    def _apply_status(state: BoardState, status: dict[str, Any]) -> None:
        state.battery_pct = status["battery_pct"]
        state.buffer_fill = status["fill"] / status["capacity"] if status["capacity"] else None
        state.board_dropped = status["dropped"]
