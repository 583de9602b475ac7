"""Ring buffer and clock under the MicroPython unix port (96 KiB heap)."""

from __future__ import annotations

from tests.firmware.helpers import run_board
from tests.parts import MicroPython

RING = r"""
import micropython
from ringbuf import ReadingRing

r = ReadingRing(5)
for i in range(3):
    assert r.push(1000 + 50 * i, 200 + i) == i
assert (r.oldest, r.next, r.fill(), r.unsent()) == (0, 3, 3, 3)
assert r.ticks_at(2) == 1100 and r.distance_at(2) == 202

# sending moves the cursor, only an ack releases
r.advance(2)
assert r.unsent() == 1 and r.fill() == 3
assert r.ack(0) and r.oldest == 1 and r.fill() == 2
assert not r.ack(3), "ack of a seq never produced must be refused"
assert not r.ack(99)
assert r.ack(0) and r.oldest == 1, "an old ack changes nothing"

# a reconnect sends every unacknowledged reading again
r.rewind()
assert r.cursor == 1

# overflow drops the oldest, counts it, and keeps the cursor on held readings
for i in range(3, 9):
    r.push(1000 + 50 * i, 200 + i)
assert r.dropped == 3 and r.fill() == 5 and r.oldest == 4 and r.next == 9
assert r.cursor == 4
assert [r.distance_at(s) for s in range(4, 9)] == [204, 205, 206, 207, 208]
assert r.ticks_at(8) == 1400

# resume: acknowledges before seq and sends from seq
assert r.resume(6) and r.oldest == 6 and r.cursor == 6
assert r.resume(2) and r.oldest == 6 and r.cursor == 6, "resume of a dropped seq starts at the oldest held"
assert r.resume(9) and r.fill() == 0 and r.unsent() == 0, "resume of next means everything is acknowledged"
assert not r.resume(10)

# ticks keep 32 bits, distance 16 bits
r.push(0x3FFFFFFF, 65535)
assert r.ticks_at(9) == 0x3FFFFFFF and r.distance_at(9) == 65535

# push allocates nothing (the sampling loop runs with the heap locked here)
big = ReadingRing(3000)
def push_locked(ring, n):
    micropython.heap_lock()
    try:
        for i in range(n):
            ring.push(i * 50, i & 0xFFFF)
    finally:
        micropython.heap_unlock()
push_locked(big, 10000)
assert big.dropped == 7000 and big.oldest == 7000 and big.distance_at(9999) == 9999
print("RING OK")
"""

CLOCK = r"""
import clock
from clock import Clock, TICKS_MASK, ticks_delta

assert ticks_delta(5, 3) == 2 and ticks_delta(3, 5) == -2
# across the 2^30 wrap of the masked ticks
assert ticks_delta(10, TICKS_MASK - 9) == 20
assert ticks_delta(TICKS_MASK - 9, 10) == -20

c = Clock()
assert not c.synced and c.now_epoch() is None
# readings taken before the sync (ticks 1000 and 1050), sync arrives at ticks 5000
c.sync(1700000005000, ticks=5000)
assert c.synced
assert c.to_epoch(1000) == 1700000001000
assert c.to_epoch(1050) == 1700000001050
assert c.to_epoch(5100) == 1700000005100
# a sync just after the tick counter wrapped still stamps readings from before the wrap
c.sync(1700000000000, ticks=20)
assert c.to_epoch(TICKS_MASK - 29) == 1700000000000 - 50
# a re-sync replaces the offset (drift correction)
c.sync(1700000009000, ticks=5000)
assert c.to_epoch(5000) == 1700000009000 and c.syncs == 3
# now_ticks follows time.ticks_ms
import time
a = clock.now_ticks(); time.sleep_ms(30); b = clock.now_ticks()
assert 25 <= ticks_delta(b, a) <= 200, ticks_delta(b, a)
print("CLOCK OK")
"""


def test_ring_buffer(micropython: MicroPython) -> None:
    assert "RING OK" in run_board(micropython, RING)


def test_clock(micropython: MicroPython) -> None:
    assert "CLOCK OK" in run_board(micropython, CLOCK)
