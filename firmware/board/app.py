# The board: sampling, control, readings, status and watchdog, one asyncio task each.

import gc
import os

import asyncio
import stedi_protocol as p
from clock import Clock, now_ticks, ticks_delta
from peripheral import Peripheral
from ringbuf import ReadingRing
from sampler import Sampler
from version import FIRMWARE_VERSION, MANUFACTURER

_NOTIFY_RETRY_MS = 100


def new_boot_id():
    """A random non-zero u16, new at every boot."""
    while True:
        b = os.urandom(2)
        boot_id = b[0] | (b[1] << 8)
        if boot_id:
            return boot_id


class Board:
    def __init__(self, config, ble, sensor, wdt=None, battery_adc=None, ring=None):
        # The ring is the one big block: main.py allocates it before importing this module,
        # while the heap is still in one piece; otherwise allocate it first thing here.
        if ring is None:
            gc.collect()
            ring = ReadingRing(config["buffer_readings"])
        self.ring = ring
        self.config = config
        self.boot_id = new_boot_id()
        self.version = p.parse_version(FIRMWARE_VERSION)
        self.clock = Clock()
        self.sampler = Sampler(sensor, self.ring, config["rate_hz"])
        self.encoder = p.BatchEncoder(p.readings_per_frame(p.MTU_PREFERRED))
        self.status_buf = bytearray(p.STATUS_SIZE)
        self.battery_buf = bytearray(1)  # 0 until the first reading, so that one is written
        self.malformed = 0
        self.frames_sent = 0
        self.notify_refused = 0
        self.streaming = False  # set by TIME_SYNC on the current connection
        self.wdt = wdt
        self.battery_adc = battery_adc
        self.battery_pct = 100
        # BTstack (the Pico W's stack) queues notifications on the heap instead of refusing them.
        self.link = Peripheral(ble, config["serial"], FIRMWARE_VERSION, config["model"], MANUFACTURER, self.on_link,
                               heap_queued=config.get("board") == "picow")
        self._send_flag = asyncio.ThreadSafeFlag()
        self._beats_seen = -1
        self.update_status()
        if config["autostart"]:
            self.sampler.start()

    # --- control -------------------------------------------------------------
    def handle_control(self, data):
        """Apply one control write; malformed or stale ones are counted and ignored."""
        try:
            op, value, boot_id = p.decode_control(data)
        except ValueError:
            self.malformed += 1
            return False
        if boot_id is not None and boot_id != self.boot_id:
            self.malformed += 1
            return False
        ok = True
        if op == p.OP_TIME_SYNC:
            self.clock.sync(value)
            self.streaming = self.link.conn is not None
        elif op == p.OP_ACK:
            ok = self.ring.ack(value)
        elif op == p.OP_RESUME:
            ok = self.ring.resume(value)
        elif op == p.OP_SET_RATE:
            if value > self.sampler.max_hz:
                ok = False  # faster than the sensor measures: refused and counted
            else:
                self.sampler.set_rate(value)
        elif op == p.OP_START:
            self.sampler.start()
        elif op == p.OP_STOP:
            self.sampler.stop()
        if not ok:
            self.malformed += 1
        self._send_flag.set()
        return ok

    def renew_boot(self):
        """Carry on as a new boot once this one's seqs are used up and all acknowledged.

        A new boot id and seqs from 0, as after a reset but with nothing lost: the ring is
        empty.  The central is let go, so that it reconnects and reads the new boot id."""
        old = self.boot_id
        while self.boot_id == old:
            self.boot_id = new_boot_id()
        self.ring.reset()
        self.streaming = False
        self.link.disconnect()
        self.update_status()

    def on_link(self):
        """Connect or disconnect (from the BLE IRQ, before any write of the new connection
        is handled): a new connection gets everything unacknowledged again, after its TIME_SYNC."""
        self.streaming = False
        self.ring.rewind()

    # --- readings ------------------------------------------------------------
    def frame_limit(self):
        return p.readings_per_frame(self.link.mtu)

    def build_frame(self):
        """Encode readings from the send cursor; returns (length, count), (0, 0) if none."""
        ring = self.ring
        seq = ring.cursor
        end = ring.next
        if seq >= end:
            return 0, 0
        enc = self.encoder
        prev = ring.ticks_at(seq)
        enc.begin(self.boot_id, seq, self.clock.to_epoch(prev), self.frame_limit())
        while seq < end:
            t = ring.ticks_at(seq)
            if not enc.add(ticks_delta(t, prev), ring.distance_at(seq)):
                break
            prev = t
            seq += 1
        return enc.finish(), enc.count

    def ready_to_send(self):
        """A full frame is waiting, or the oldest unsent reading is batch_ms old."""
        ring = self.ring
        unsent = ring.unsent()
        if unsent <= 0:
            return False
        if unsent >= self.frame_limit():
            return True
        return ticks_delta(now_ticks(), ring.ticks_at(ring.cursor)) >= self.config["batch_ms"]

    def send_one(self):
        """Send one frame if there is one to send; True if sent."""
        length, count = self.build_frame()
        if count == 0:
            return False
        link = self.link
        generation = link.generation
        if not link.notify(link.h_readings, memoryview(self.encoder.buf)[:length]):
            self.notify_refused += 1
            return False
        self.frames_sent += 1
        # A connect or disconnect IRQ can run as the notify returns; on_link then rewound the
        # cursor to the oldest unacknowledged reading, and moving it on would skip this frame
        # on the new connection.
        if link.generation == generation:
            self.ring.advance(count)
        return True

    # --- status --------------------------------------------------------------
    def read_battery(self):
        if self.battery_adc is None:
            return 100
        cfg = self.config
        try:
            raw = self.battery_adc.read_u16()
        except OSError:
            return p.BATTERY_UNKNOWN
        pct = (raw - cfg["battery_empty_u16"]) * 100 // (cfg["battery_full_u16"] - cfg["battery_empty_u16"])
        return 0 if pct < 0 else (100 if pct > 100 else pct)

    def update_status(self):
        ring = self.ring
        sampler = self.sampler
        p.encode_status_into(
            self.status_buf, self.version, self.boot_id, ring.next, ring.fill(), ring.capacity, ring.dropped,
            sampler.errors, self.malformed + self.link.writes_lost, self.battery_pct, sampler.rate_hz,
            self.clock.synced, sampler.running,
        )
        self.link.set_value(self.link.h_status, self.status_buf)

    # --- tasks ---------------------------------------------------------------
    async def control_task(self):
        link = self.link
        while True:
            await link.write_flag.wait()
            data = link.take_write()
            while data is not None:
                self.handle_control(data)
                data = link.take_write()


    async def readings_task(self):
        pace = self.config["pace_ms"]
        while True:
            if self.streaming and self.link.conn is not None and self.clock.synced and self.ready_to_send():
                try:
                    sent = self.send_one()
                except MemoryError:
                    # Nothing was sent or advanced: the readings stay in the ring for the retry.
                    # Ending this task instead would stop streaming until the watchdog resets
                    # the board, and the reset would lose every unacknowledged reading.
                    gc.collect()
                    sent = False
                if sent:
                    await asyncio.sleep_ms(pace)
                else:
                    await asyncio.sleep_ms(_NOTIFY_RETRY_MS)
            else:
                await asyncio.sleep_ms(20)

    async def status_task(self):
        period = self.config["status_ms"]
        while True:
            self.link.keep_alive()
            ring = self.ring
            if ring.used_up() and ring.fill() == 0:
                self.renew_boot()
            self.battery_pct = self.read_battery()
            if self.battery_pct != p.BATTERY_UNKNOWN and self.battery_pct != self.battery_buf[0]:
                self.battery_buf[0] = self.battery_pct
                self.link.set_value(self.link.h_battery, self.battery_buf)
                if self.link.conn is not None:
                    self.link.notify(self.link.h_battery, self.battery_buf)
            self.update_status()
            if self.link.conn is not None:
                self.link.notify(self.link.h_status, self.status_buf)
            await asyncio.sleep_ms(period)

    async def watchdog_task(self):
        # Feed only while sampling makes progress (or is stopped on purpose), so a stuck
        # sampling loop resets the board.
        while True:
            # A slot left out while the boot's seqs are used up is progress too: the board then
            # waits for acknowledgements, and a reset would lose what it still holds.
            beats = self.sampler.samples + self.sampler.renewal_waits
            if beats != self._beats_seen or not self.sampler.running:
                self.wdt.feed()
            self._beats_seen = beats
            await asyncio.sleep_ms(1000)

    async def run(self, duration_ms=None):
        tasks = [
            asyncio.create_task(self.sampler.run()),
            asyncio.create_task(self.control_task()),
            asyncio.create_task(self.readings_task()),
            asyncio.create_task(self.status_task()),
        ]
        if self.wdt is not None:
            tasks.append(asyncio.create_task(self.watchdog_task()))
        gc.collect()
        if duration_ms is None:
            await asyncio.gather(*tasks)
        else:
            await asyncio.sleep_ms(duration_ms)
            for t in tasks:
                t.cancel()


def start(config_path="config.json", config=None, ring=None, watchdog=True):
    """Build the board from config.json (or an already loaded config) and the real (or
    shimmed) machine and bluetooth.  ``watchdog=False``: no watchdog this boot (a flash is
    pending, config.FLASH_PENDING)."""
    import sys

    import bluetooth
    import machine

    from sensors import make_sensor

    if config is None:
        import config as board_config

        config = board_config.load(config_path)
        del board_config
        sys.modules.pop("config", None)  # its defaults table is not needed after loading: free it
        gc.collect()
    gc.collect()
    sensor = make_sensor(config)
    gc.collect()
    wdt = None
    if config["watchdog_ms"] and hasattr(machine, "WDT"):
        if watchdog:
            wdt = machine.WDT(timeout=config["watchdog_ms"])
        else:
            print("STEDI watchdog off for this boot: a flash is pending")
    adc = None
    if config["battery_adc_pin"] is not None:
        adc = machine.ADC(machine.Pin(config["battery_adc_pin"]))
    board = Board(config, bluetooth.BLE(), sensor, wdt, adc, ring)
    print("STEDI %s boot %d serial %s sensor %s rate %d Hz buffer %d" % (
        FIRMWARE_VERSION, board.boot_id, config["serial"], config["sensor"], config["rate_hz"],
        config["buffer_readings"]))
    return board
