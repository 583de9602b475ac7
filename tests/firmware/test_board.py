"""The whole board (all tasks) under the MicroPython unix port, with the recording fake of
`bluetooth` playing the central: GATT table, advertising, clock sync, streaming, ack, resume,
reconnect, malformed writes, overflow, small MTU, refused notifications, watchdog."""

from __future__ import annotations

from pathlib import Path

from tests.firmware.helpers import run_board_compiled
from tests.parts import MicroPython

COMMON = r"""
import asyncio, gc, sys, bluetooth, machine
import app
import stedi_protocol as p
from sensors.sim import SimSensor

SERIAL = "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab"
E0 = 1700000000000

def make(sensor=None, **over):
    # a small ring: this test script itself is compiled from source on the same 96 KiB heap
    o = {"serial": SERIAL, "board": PROFILE, "rate_hz": 50, "batch_ms": 300, "pace_ms": 5, "status_ms": 200,
         "buffer_readings": 600}
    o.update(over)
    import config
    cfg = config.merge(o)
    del sys.modules["config"]  # as main.py does: its defaults and rules are not needed after loading
    config = None
    gc.collect()
    bluetooth._instance = None
    ble = bluetooth.BLE()
    wdt = machine.WDT(timeout=cfg["watchdog_ms"])
    return app.Board(cfg, ble, sensor or SimSensor(), wdt), ble

def frames(board, ble):
    out = []
    for f in ble.take_notified(board.link.h_readings):
        out.append((len(f), p.decode_batch(f)))
    return out

def readings(board, ble):
    ble.take_notified(board.link.h_status)
    gc.collect()
    rs = []
    for n, (boot, first, r) in frames(board, ble):
        assert boot == board.boot_id
        assert r[0][0] == first
        rs.extend(r)
    return rs

def status(board, ble):
    return p.decode_status(ble.gatts_read(board.link.h_status))

def write(board, ble, data, conn=1):
    ble.central_write(board.link.h_control, data, conn)
"""

STREAM = COMMON + r"""
board, ble = make()
link = board.link

# GATT table and advertising
assert ble.configured["mtu"] == 247 and ble.configured["gap_name"] == "STEDI-90ab"
assert ble.gatts_read(ble.handle_of(0x2A25)) == SERIAL.encode()
assert ble.gatts_read(ble.handle_of(0x2A26)) == b"1.0.0"
assert ble.gatts_read(ble.handle_of(0x2A24)) == b"STEDI-ST1"
assert ble.gatts_read(ble.handle_of(0x2A29)) == b"STEDI"
assert ble.chars[p.READINGS_UUID][1] == 0x0010
assert ble.chars[p.CONTROL_UUID][1] == 0x0008 | 0x0004
assert ble.chars[p.STATUS_UUID][1] == 0x0002 | 0x0010
assert ble.buffers[link.h_control] == (32, False)
interval, adv, resp, connectable = ble.adverts[-1]
assert connectable and interval == 100000
fields = p.decode_ad_fields(adv) + p.decode_ad_fields(resp)
assert (p.AD_UUID128_COMPLETE, p.uuid128_le(p.SERVICE_UUID)) in fields
assert (p.AD_NAME_COMPLETE, b"STEDI-90ab") in fields

async def scenario():
    task = asyncio.create_task(board.run())
    await asyncio.sleep_ms(400)
    assert not ble.notified, "nothing is sent without a central"
    ble.central_connect(1)
    ble.mtu_exchanged(247, 1)
    await asyncio.sleep_ms(500)
    assert ble.take_notified(link.h_readings) == [], "nothing is sent before the clock is synced"
    st = p.decode_status(ble.take_notified(link.h_status)[-1])
    assert not st["clock_synced"] and st["sampling"] and st["next_seq"] >= 30 and st["boot_id"] == board.boot_id
    before = board.ring.next
    write(board, ble, p.encode_time_sync(E0))
    await asyncio.sleep_ms(1200)
    got = frames(board, ble)
    assert got, "frames after the sync"
    rs = []
    for n, (boot, first, r) in got:
        assert n <= 247 - 3 and n == p.frame_size(len(r))
        rs.extend(r)
    for i in range(len(rs)):
        assert rs[i][0] == i, "every reading from seq 0, in order, no gap"
    seqs = None
    assert len(rs) >= before
    times = [r[1] for r in rs]
    deltas = [times[i] - times[i - 1] for i in range(1, len(times))]
    # a busy shared machine delays single samples; the schedule catches up or skips (and counts)
    # whole slots, so the span is the slots used plus the slots counted as missed
    span, slots = sum(deltas), len(deltas)
    assert min(deltas) >= 0 and 20 * slots - 25 <= span <= 20 * (slots + board.sampler.missed) + 25, (
        span, slots, board.sampler.missed, deltas)
    # readings taken before the sync are stamped with the sync's offset (same boot)
    assert times[before - 1] < E0 < times[before + 2], (times[before - 1], times[before + 2])
    assert E0 - times[0] >= 700, "first reading taken ~0.9 s before the sync"
    assert [r[2] for r in rs[:4]] == [SimSensor().value_at(i) for i in range(4)]
    st = status(board, ble)
    assert st["clock_synced"] and st["fill"] >= len(rs), "sent is not released"
    last = rs[-1][0]
    # the decoded readings are test data on the board's own 96 KiB heap: let them go
    rs = seqs = times = deltas = got = None
    gc.collect()

    # ack releases
    write(board, ble, p.encode_ack(last, board.boot_id))
    await asyncio.sleep_ms(20)
    assert board.ring.oldest == last + 1
    # resume re-sends from a seq; an ack from another boot and garbage are ignored and counted
    write(board, ble, p.encode_ack(board.ring.next - 1, board.boot_id ^ 1))
    write(board, ble, b"\xff\x00")
    write(board, ble, b"")
    write(board, ble, p.encode_ack(10 ** 6))
    await asyncio.sleep_ms(20)
    assert board.ring.oldest == last + 1, "stale or impossible acks released readings"
    assert board.malformed == 4, board.malformed
    frames(board, ble)
    await asyncio.sleep_ms(600)
    frames(board, ble)
    write(board, ble, p.encode_resume(last + 1, board.boot_id))
    await asyncio.sleep_ms(700)
    again = readings(board, ble)
    assert again and again[0][0] == last + 1, again[:1]
    again = None

    # disconnect: sampling goes on; reconnect + sync: everything unacknowledged comes again
    ble.central_disconnect(1)
    assert len(ble.adverts) >= 2, "advertising again after a disconnect"
    await asyncio.sleep_ms(400)
    ble.central_connect(1)
    assert board.link.mtu == 23, "a new connection starts at the default MTU"
    ble.mtu_exchanged(247, 1)
    await asyncio.sleep_ms(400)
    assert readings(board, ble) == [], "a new connection waits for its TIME_SYNC"
    write(board, ble, p.encode_time_sync(E0 + 10000))
    await asyncio.sleep_ms(800)
    rs2 = readings(board, ble)
    assert rs2[0][0] == last + 1, "resent from the oldest unacknowledged reading"
    for i in range(len(rs2)):
        assert rs2[i][0] == last + 1 + i, "consecutive, no gap"
    rs2 = None

    # rate, stop, start
    write(board, ble, p.encode_set_rate(10))
    write(board, ble, p.encode_stop())
    await asyncio.sleep_ms(300)
    st = status(board, ble)
    assert st["rate_hz"] == 10 and not st["sampling"]
    n0 = board.ring.next
    await asyncio.sleep_ms(300)
    assert board.ring.next == n0, "stopped"
    write(board, ble, p.encode_start())
    await asyncio.sleep_ms(350)
    assert 2 <= board.ring.next - n0 <= 5, board.ring.next - n0

    # notifications the stack cannot take (esp32: OSError ENOMEM; picow: MemoryError from the
    # heap copy) are retried, nothing lost, and no task dies of it
    readings(board, ble)
    write(board, ble, p.encode_ack(board.ring.next - 1, board.boot_id))
    cursor = board.ring.next
    ble.refuse_notify = 2
    await asyncio.sleep_ms(1000)
    rs3 = readings(board, ble)
    # the refusals may hit status or readings notifications; either way no reading is skipped
    assert ble.refuse_notify == 0 and rs3 and rs3[0][0] == cursor, (ble.refuse_notify, rs3[:1], cursor)
    for i in range(len(rs3)):
        assert rs3[i][0] == cursor + i
    st = status(board, ble)
    assert st["malformed_writes"] == 4 and st["dropped"] == 0 and st["battery_pct"] == 100
    assert ble.gatts_read(link.h_battery) == b"\x64"
    assert not task.done(), "every task of the board still runs"
    task.cancel()
    assert machine.WDTS[-1].feeds >= 3, "the watchdog is fed while sampling runs"
    print("frames sent", board.frames_sent, "readings", board.ring.next)

asyncio.run(scenario())
print("STREAM OK")
"""

SMALL = COMMON + r"""
# a 16-reading buffer with no gateway: the oldest are dropped, counted, and the gap shows
board, ble = make(SimSensor(error_every=3), buffer_readings=16, rate_hz=50)

async def scenario():
    task = asyncio.create_task(board.run())
    await asyncio.sleep_ms(800)
    board.update_status()  # the status task refreshes every 200 ms; read the current state
    st = status(board, ble)
    assert st["fill"] == 16 and st["capacity"] == 16 and st["dropped"] == st["next_seq"] - 16 > 0, st
    # every third measurement fails: counted, and it takes no sequence number
    assert st["sensor_errors"] == board.sampler.errors > 0 and board.sampler.samples == st["next_seq"] + st["sensor_errors"]
    ble.central_connect(1)
    # default MTU 23: one reading per 20-byte notification
    write(board, ble, p.encode_time_sync(E0))
    await asyncio.sleep_ms(400)
    got = frames(board, ble)
    assert got and all(n == 20 and len(f[2]) == 1 for n, f in got)
    first = got[0][1][1]
    assert first > 0, "seq 0 was dropped: the gateway sees the gap"
    for n, f in got:
        assert f[2][0][2] == SimSensor().value_at(f[2][0][0] + f[2][0][0] // 2), "error slots skipped, values kept"
    # status notifications are cut to 20 bytes at MTU 23: decode_status says so
    cut = ble.take_notified(board.link.h_status)[-1][:20]
    try:
        p.decode_status(cut)
        raise AssertionError("cut status accepted")
    except ValueError as e:
        assert "too short" in str(e)
    task.cancel()

asyncio.run(scenario())

# the watchdog is fed only while sampling makes progress: a stuck sampler resets the board
board, ble = make()
wdt = machine.WDTS[-1]

async def stuck():
    task = asyncio.create_task(board.watchdog_task())  # the sampling task is not running
    await asyncio.sleep_ms(2500)
    fed_while_stuck = wdt.feeds
    board.sampler.stop()  # stopped on purpose: fed again
    await asyncio.sleep_ms(1100)
    task.cancel()
    return fed_while_stuck, wdt.feeds

fed_while_stuck, fed = asyncio.run(stuck())
assert fed_while_stuck == 1 and fed >= 2, (fed_while_stuck, fed)
print("SMALL OK")
"""


RENEW = COMMON + r"""
from ringbuf import SEQ_LIMIT

board, ble = make()
ring = board.ring
ring.oldest = ring.next = ring.cursor = SEQ_LIMIT - 5  # a boot about to give its last seq
old = board.boot_id

async def scenario():
    task = asyncio.create_task(board.run())
    ble.central_connect(1)
    ble.mtu_exchanged(247, 1)
    write(board, ble, p.encode_time_sync(E0))
    await asyncio.sleep_ms(700)
    rs = readings(board, ble)
    assert [r[0] for r in rs] == list(range(SEQ_LIMIT - 5, SEQ_LIMIT)), [r[0] for r in rs]
    assert ring.used_up() and board.sampler.renewal_waits > 0, "no seq left: slots not sampled"
    # Waiting for the acknowledgements is progress: the watchdog must not reset the board now.
    fed = machine.WDTS[-1].feeds
    await asyncio.sleep_ms(2300)
    assert machine.WDTS[-1].feeds >= fed + 2, (fed, machine.WDTS[-1].feeds)
    assert board.boot_id == old and 1 in ble.connected, "no renewal while readings are unacknowledged"
    write(board, ble, p.encode_ack(SEQ_LIMIT - 1, old))
    await asyncio.sleep_ms(450)  # the status task (200 ms) renews the boot
    new = board.boot_id
    assert new != old and 0 < ring.next < 30 and not ring.used_up(), (new, ring.next)
    assert 1 not in ble.connected, "the central is let go, to reconnect to the new boot"
    assert status(board, ble)["boot_id"] == new
    ble.central_connect(2)
    write(board, ble, p.encode_time_sync(E0 + 2000), conn=2)
    await asyncio.sleep_ms(700)
    rs = readings(board, ble)  # every frame of the new boot
    assert rs and [r[0] for r in rs] == list(range(len(rs))), "the new boot streams from seq 0"
    task.cancel()

asyncio.run(scenario())
print("RENEW OK")
"""


def scenario(script: str, profile: str) -> str:
    """The script for one board profile: PROFILE names the port the doubles behave as."""
    return f"PROFILE = {profile!r}\n" + script


def test_board_renews_its_boot_when_seqs_run_out(micropython: MicroPython, built_dir: Path, profile: str) -> None:
    out = run_board_compiled(micropython, scenario(RENEW, profile), timeout=30, board=built_dir, profile=profile)
    assert "RENEW OK" in out, out


def test_board_streams_over_fake_ble(micropython: MicroPython, built_dir: Path, profile: str) -> None:
    # the built .mpy modules, as flashed: compiling all the source on a 96 KiB heap does not fit
    out = run_board_compiled(micropython, scenario(STREAM, profile), timeout=60, board=built_dir, profile=profile)
    assert "STREAM OK" in out, out


def test_board_small_buffer_and_mtu(micropython: MicroPython, built_dir: Path, profile: str) -> None:
    out = run_board_compiled(micropython, scenario(SMALL, profile), timeout=30, board=built_dir, profile=profile)
    assert "SMALL OK" in out, out
