# Sampling on a fixed schedule: the next deadline is the previous deadline plus one
# period (ticks_add), never "now + period", so lateness does not accumulate.
# Periods are in microseconds with a remainder carried, so 30 Hz stays exact.
# sample() allocates nothing: the sensor returns an int, the ring stores bytes.

import time

import asyncio
from asyncio import ThreadSafeFlag  # loads asyncio's event module now, not mid-start-up

from clock import now_ticks


class Sampler:
    def __init__(self, sensor, ring, rate_hz):
        self.sensor = sensor
        self.max_hz = getattr(sensor, "MAX_RATE_HZ", 50)  # the sensor's own limit (sensors/__init__.py)
        self.ring = ring
        self.running = False
        self.samples = 0  # measurements attempted
        self.errors = 0  # sensor errors/timeouts (they take no sequence number)
        self.missed = 0  # schedule slots skipped because the loop was late
        self.renewal_waits = 0  # slots not sampled: the boot's seqs are used up (Board.renew_boot)
        self.max_late_us = 0
        self._wake = ThreadSafeFlag()
        self.set_rate(rate_hz)

    def set_rate(self, hz):
        if hz < 1 or hz > self.max_hz:
            raise ValueError("rate must be 1..%d Hz for this sensor" % self.max_hz)
        self.rate_hz = hz
        self.period_us = 1000000 // hz
        self._rem_step = 1000000 % hz
        self._rem = 0
        self._rate_changed = True

    def start(self):
        self.running = True
        self._wake.set()

    def stop(self):
        self.running = False

    def sample(self):
        if self.ring.used_up():
            # No seq to give: not measured at all, so no reading exists that could be lost.
            self.renewal_waits += 1
            return
        d = self.sensor.read()
        self.samples += 1
        if d < 0:
            self.errors += 1
        else:
            self.ring.push(now_ticks(), d)

    async def run(self):
        ticks_us = time.ticks_us
        ticks_diff = time.ticks_diff
        ticks_add = time.ticks_add
        while True:
            if not self.running:
                await self._wake.wait()
                continue
            deadline = ticks_us()
            self._rate_changed = False
            while self.running and not self._rate_changed:
                late = ticks_diff(ticks_us(), deadline)
                if late > self.max_late_us:
                    self.max_late_us = late
                if late >= self.period_us:
                    # too late for this slot and maybe the next ones: skip them, count them
                    skipped = late // self.period_us
                    self.missed += skipped
                    deadline = ticks_add(deadline, skipped * self.period_us)
                self.sample()
                step = self.period_us
                self._rem += self._rem_step
                if self._rem >= self.rate_hz:
                    self._rem -= self.rate_hz
                    step += 1
                deadline = ticks_add(deadline, step)
                wait = ticks_diff(deadline, ticks_us())
                if wait >= 1000:
                    await asyncio.sleep_ms(wait // 1000)
                else:
                    await asyncio.sleep_ms(0)
                wait = ticks_diff(deadline, ticks_us())
                if wait > 0:
                    time.sleep_us(wait)  # the last fraction of a ms: asyncio sleeps in whole ms
