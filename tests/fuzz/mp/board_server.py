# A running Board (the real firmware under the test BLE shim) that takes one control write per
# stdin line (hex) and answers "<malformed added> <writes lost> <next_seq seen> <len seen> <ok>":
# how much the board's malformed count rose, how many writes the IRQ queue lost, the board's
# next_seq and the write's length when the control task handled it, and whether the ring and
# rate invariants still hold.  "READY <boot_id> <next_seq>" first; "CRASH <error>" if the board stops.
import sys

import asyncio
import bluetooth
import gc

import app
import config
from sensors.sim import SimSensor

cfg = config.merge({"serial": "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab", "buffer_readings": 200, "rate_hz": 50,
                    "batch_ms": 100, "pace_ms": 1})
ble = bluetooth.BLE()
board = app.Board(cfg, ble, SimSensor(), None)
seen = []
_handle = board.handle_control


def traced(data):
    # What the board knew when it judged the write: its next_seq decides a stale ACK/RESUME.
    seen.append((board.ring.next, len(data)))
    return _handle(data)


board.handle_control = traced


def invariants_hold():
    r = board.ring
    return r.oldest <= r.cursor <= r.next and r.next - r.oldest <= r.capacity and 1 <= board.sampler.rate_hz <= 50


async def main():
    task = asyncio.create_task(board.run())
    ble.central_connect(1)
    ble.mtu_exchanged(247, 1)
    await asyncio.sleep_ms(40)  # a few readings exist before the first write
    sys.stdout.write("READY %d %d\n" % (board.boot_id, board.ring.next))
    n = 0
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        data = bytes.fromhex(line.strip())
        before = board.malformed
        del seen[:]
        ble.central_write(board.link.h_control, data, 1)
        spins = 0
        while board.link.pending_writes() and spins < 1000:
            await asyncio.sleep_ms(0)
            spins += 1
        if task.done():
            try:
                await task  # re-raises what ended it
            except Exception as e:
                sys.stdout.write("CRASH %r\n" % (e,))
                return
            sys.stdout.write("CRASH board stopped\n")
            return
        ok = 1 if invariants_hold() and len(seen) == 1 else 0
        next_seq, length = seen[0] if seen else (-1, -1)
        sys.stdout.write("%d %d %d %d %d\n" % (board.malformed - before, board.link.writes_lost, next_seq, length, ok))
        ble.notified = []  # what the central would have taken
        n += 1
        if n % 64 == 0:
            gc.collect()


asyncio.run(main())
