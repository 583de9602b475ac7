"""Fuzz under MicroPython: random control writes and mangled frames never crash the decoders
or the board; every input is either decoded to something that re-encodes to the same bytes,
or refused with ValueError (and counted by the board)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.firmware.helpers import run_board_compiled
from tests.parts import MicroPython

FUZZ = r"""
import random, gc
import stedi_protocol as p
random.seed(20261128)

def rbytes(n):
    return bytes(random.getrandbits(8) for _ in range(n))

def reencode(op, value, boot_id):
    if op == p.OP_TIME_SYNC:
        return p.encode_time_sync(value)
    if op == p.OP_ACK:
        return p.encode_ack(value, boot_id)
    if op == p.OP_RESUME:
        return p.encode_resume(value, boot_id)
    if op == p.OP_SET_RATE:
        return p.encode_set_rate(value)
    return p.encode_start() if op == p.OP_START else p.encode_stop()

# control writes: random lengths, often a real opcode with a random payload
tried = accepted = refused = 0
for i in range(6000):
    n = random.getrandbits(4) % 12
    data = rbytes(n)
    if n and random.getrandbits(1):
        data = bytes((1 + random.getrandbits(3) % 6,)) + data[1:]
    tried += 1
    try:
        op, value, boot_id = p.decode_control(data)
    except ValueError:
        refused += 1
        continue
    accepted += 1
    assert reencode(op, value, boot_id) == data, data
assert accepted > 100 and refused > 1000, (accepted, refused)

# frames: valid frames with random bytes flipped, cut, extended or replaced
base = []
for k in range(4):
    count = 1 + random.getrandbits(6)
    t = 1700000000000 + random.getrandbits(20)
    rs = []
    for s in range(count):
        rs.append((100 + s, t, random.getrandbits(16)))
        t += random.getrandbits(8)
    base.append(p.encode_batch(random.getrandbits(16), 100, rs))
ftried = fbad = fgood = 0
for i in range(4000):
    f = bytearray(base[i % 4])
    kind = i % 4
    if kind == 0:
        f[random.getrandbits(8) % len(f)] ^= 1 << (random.getrandbits(3))
    elif kind == 1:
        f = f[: random.getrandbits(8) % len(f)]
    elif kind == 2:
        f = f + rbytes(1 + random.getrandbits(2))
    else:
        f = bytearray(rbytes(random.getrandbits(8) % 64))
    ftried += 1
    try:
        boot, first, rs = p.decode_batch(bytes(f))
    except ValueError:
        fbad += 1
        continue
    fgood += 1
    assert p.encode_batch(boot, first, rs) == bytes(f)
assert fbad >= 3900, fbad
# the status decoder too
stried = 0
for i in range(500):
    try:
        p.decode_status(rbytes(random.getrandbits(6)))
    except ValueError:
        pass
    stried += 1
gc.collect()
print("FUZZ control %d (accepted %d) frames %d (refused %d) status %d" % (tried, accepted, ftried, fbad, stried))
"""

BOARD_FUZZ = r"""
import random, asyncio, bluetooth, machine
import app, config
import stedi_protocol as p
from sensors.sim import SimSensor
random.seed(7)
cfg = config.merge({"serial": "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab", "buffer_readings": 200, "rate_hz": 50,
                    "batch_ms": 100, "pace_ms": 1})
ble = bluetooth.BLE()
board = app.Board(cfg, ble, SimSensor(), None)

async def go():
    task = asyncio.create_task(board.run())
    ble.central_connect(1)
    ble.mtu_exchanged(247, 1)
    ble.central_write(board.link.h_control, p.encode_time_sync(1700000000000), 1)
    sent = 0
    for i in range(1500):
        n = random.getrandbits(4) % 10
        data = bytes(random.getrandbits(8) for _ in range(n))
        if n and i % 3 == 0:
            data = bytes((2 + random.getrandbits(1),)) + data[1:]  # ack/resume with random seq
        ble.central_write(board.link.h_control, data, 1)
        sent += 1
        if i % 8 == 0:
            await asyncio.sleep_ms(2)
            ble.take_notified(board.link.h_readings)
            ble.take_notified(board.link.h_status)
    await asyncio.sleep_ms(50)
    task.cancel()
    r = board.ring
    assert r.oldest <= r.cursor <= r.next and r.next - r.oldest <= r.capacity
    assert board.malformed + board.link.writes_lost > 500
    assert 1 <= board.sampler.rate_hz <= 50
    print("BOARD FUZZ writes %d malformed %d lost %d" % (sent, board.malformed, board.link.writes_lost))

asyncio.run(go())
"""


def test_fuzz_protocol_under_micropython(micropython: MicroPython, built_dir: Path) -> None:
    out = run_board_compiled(micropython, FUZZ, board=built_dir, timeout=120)
    m = re.search(r"FUZZ control (\d+) \(accepted (\d+)\) frames (\d+) \(refused (\d+)\) status (\d+)", out)
    assert m, out
    assert int(m[1]) == 6000 and int(m[3]) == 4000 and int(m[5]) == 500


def test_fuzz_board_control_writes(micropython: MicroPython, built_dir: Path) -> None:
    out = run_board_compiled(micropython, BOARD_FUZZ, board=built_dir, timeout=120)
    assert re.search(r"BOARD FUZZ writes 1500 malformed \d+ lost \d+", out), out
