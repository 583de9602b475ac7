"""Sampling schedule under the MicroPython unix port: no drift, exact fractional periods,
start/stop/rate changes, sensor errors take no sequence number, no allocation per sample."""

from __future__ import annotations

from tests.firmware.helpers import run_board
from tests.parts import MicroPython

SAMPLER = r"""
import asyncio, micropython, time
from clock import ticks_delta
from ringbuf import ReadingRing
from sampler import Sampler
from sensors.sim import SimSensor

async def run_for(sampler, ms):
    task = asyncio.create_task(sampler.run())
    await asyncio.sleep_ms(ms)
    task.cancel()
    await asyncio.sleep_ms(0)

def check_schedule(ring, hz, label, missed):
    # samples sit on the schedule's grid: the span is the slots used plus the slots the
    # loop skipped (and counted) when the shared machine held it up, never more
    n = ring.next
    span = ticks_delta(ring.ticks_at(n - 1), ring.ticks_at(0))
    want = (n - 1 + missed) * 1000 / hz
    print("%s: %d samples, %d missed, span %d ms, schedule %d ms" % (label, n, missed, span, want))
    assert abs(span - want) <= 6, (label, span, want)
    for s in range(1, n):
        d = ticks_delta(ring.ticks_at(s), ring.ticks_at(s - 1))
        assert 0 <= d <= (missed + 2) * 1000 // hz + 10, (label, s, d)

# 50 Hz for 2 s: about 100 samples whose times follow the schedule, not "now + period"
ring = ReadingRing(1000)
s = Sampler(SimSensor(), ring, 50)
s.start()
asyncio.run(run_for(s, 2000))
assert 97 <= ring.next + s.missed <= 102, (ring.next, s.missed)
check_schedule(ring, 50, "50 Hz", s.missed)
assert s.missed <= 5, s.missed

# 30 Hz has a 33333.3 us period: the carried remainder keeps it exact
ring = ReadingRing(1000)
s = Sampler(SimSensor(), ring, 30)
s.start()
asyncio.run(run_for(s, 2000))
assert 58 <= ring.next + s.missed <= 62, (ring.next, s.missed)
check_schedule(ring, 30, "30 Hz", s.missed)

# sensor errors are counted and take no sequence number
ring = ReadingRing(1000)
s = Sampler(SimSensor(error_every=4), ring, 50)
s.start()
asyncio.run(run_for(s, 1000))
assert s.errors >= 10 and ring.next + s.errors == s.samples, (ring.next, s.errors, s.samples)

# stop, start and a rate change while running
ring = ReadingRing(1000)
s = Sampler(SimSensor(), ring, 20)
async def scenario():
    task = asyncio.create_task(s.run())
    s.start()
    await asyncio.sleep_ms(500)
    a = ring.next
    s.stop()
    await asyncio.sleep_ms(400)
    b = ring.next
    s.set_rate(50)
    s.start()
    await asyncio.sleep_ms(500)
    c = ring.next
    task.cancel()
    return a, b, c
a, b, c = asyncio.run(scenario())
assert 8 <= a <= 12, a
assert b - a <= 1, "stopped sampler kept sampling"
assert 20 <= c - b + s.missed <= 27, (c - b, s.missed)

# one sample allocates nothing (in a function: a new module global would grow the globals dict)
ring = ReadingRing(100)
s = Sampler(SimSensor(error_every=7), ring, 20)
def sample_locked(sampler, n):
    micropython.heap_lock()
    try:
        for _ in range(n):
            sampler.sample()
    finally:
        micropython.heap_unlock()
sample_locked(s, 500)
assert s.samples == 500
try:
    s.set_rate(0)
    raise AssertionError("rate 0 accepted")
except ValueError:
    pass
print("SAMPLER OK")
"""


def test_sampler_schedule(micropython: MicroPython) -> None:
    out = run_board(micropython, SAMPLER)
    assert "SAMPLER OK" in out, out
