"""What the real ports do to the firmware, under each board profile (esp32: NimBLE; picow: rp2 with
BTstack): it boots with the board's default wiring, its BLE IRQ handler never lets an exception
out (the port would switch it off for good) and allocates nothing of its own, and a notification
the stack cannot take, or an IRQ between a notify and its bookkeeping, costs no reading."""

from __future__ import annotations

import json
from pathlib import Path

from tests.firmware.helpers import run_board_compiled
from tests.parts import MicroPython

SERIAL = "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab"

COMMON = r"""
import asyncio, gc, sys, bluetooth, machine
import app
import stedi_protocol as p
from sensors.sim import SimSensor

SERIAL = "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab"
E0 = 1700000000000

def make(sensor=None, **over):
    o = {"serial": SERIAL, "board": PROFILE, "rate_hz": 50, "batch_ms": 100, "pace_ms": 5, "status_ms": 200,
         "buffer_readings": 600}
    o.update(over)
    import config
    cfg = config.merge(o)
    del sys.modules["config"]  # as main.py does: its defaults and rules are not needed after loading
    config = None
    gc.collect()
    bluetooth._instance = None
    ble = bluetooth.BLE()
    return app.Board(cfg, ble, sensor or SimSensor(), machine.WDT(timeout=cfg["watchdog_ms"])), ble

def readings(board, ble):
    ble.take_notified(board.link.h_status)
    rs = []
    for f in ble.take_notified(board.link.h_readings):
        rs.extend(p.decode_batch(f)[2])
    return [r[0] for r in rs]

def write(board, ble, data, conn):
    ble.central_write(board.link.h_control, data, conn)

async def until(pred, ms=3000):
    # polls an outcome of the board's own tasks; fails with the test's message if it never comes
    waited = 0
    while not pred():
        assert waited < ms
        await asyncio.sleep_ms(10)
        waited += 10

async def connect(board, ble, conn, epoch=E0):
    ble.central_connect(conn)
    ble.mtu_exchanged(247, conn)
    write(board, ble, p.encode_time_sync(epoch), conn)
    await until(lambda: board.streaming)

def contiguous(seqs, first):
    assert seqs and seqs[0] == first, (seqs[:3], first)
    assert seqs == list(range(first, first + len(seqs))), seqs
"""


def run(micropython: MicroPython, built_dir: Path, profile: str, script: str) -> str:
    return run_board_compiled(micropython, f"PROFILE = {profile!r}\n" + COMMON + script, board=built_dir,
                              timeout=60, profile=profile)


BOOT = r"""
from fake_vl53l0x import FakeVL53L0X
machine.I2C_DEVICES[0x29] = FakeVL53L0X([321])
board = app.start(CONFIG)
assert board.config["pins"] == PINS, board.config["pins"]
assert board.sampler.sensor.read() == 321
assert machine.WDTS[-1].timeout == 8000
print("BOOT OK")
"""


def test_default_wiring_boots_with_a_vl53l0x(micropython: MicroPython, built_dir: Path, profile: str,
                                             tmp_path: Path) -> None:
    # What `stedi firmware flash --board PROFILE --sensor vl53l0x` writes: no pins, the board's own.
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"serial": SERIAL, "board": profile, "sensor": "vl53l0x", "buffer_readings": 1000}))
    pins = {"esp32": {"trigger": 5, "echo": 18, "scl": 22, "sda": 21},
            "picow": {"trigger": 14, "echo": 15, "scl": 5, "sda": 4}}[profile]
    out = run(micropython, built_dir, profile, f"CONFIG = {str(cfg)!r}\nPINS = {pins!r}\n" + BOOT)
    assert "BOOT OK" in out, out


FORCED = r"""
from fake_vl53l0x import FakeVL53L0X
machine.I2C_DEVICES[0x29] = FakeVL53L0X([321])
try:
    app.start(CONFIG)
    raise AssertionError("booted with ESP32 wiring on a Pico W")
except ValueError as e:
    print("REFUSED", e)
"""


def test_esp32_wiring_forced_onto_a_pico_w_fails_with_the_ports_error(
    micropython: MicroPython, built_dir: Path, tmp_path: Path
) -> None:
    # config.json claims an ESP32 (so the firmware's own check passes), the board is a Pico W.
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"serial": SERIAL, "board": "esp32", "sensor": "vl53l0x"}))
    out = run(micropython, built_dir, "picow", f"CONFIG = {str(cfg)!r}\n" + FORCED)
    assert "REFUSED bad SCL pin" in out, out


IRQ_SURVIVES = r"""
board, ble = make()
link = board.link

async def scenario():
    task = asyncio.create_task(board.run())
    await connect(board, ble, 1)
    await until(lambda: len(readings(board, ble)) > 0)
    # the stack refuses to advertise again right after the disconnect
    adverts = len(ble.adverts)
    ble.fail_advertise = 1
    ble.central_disconnect(1)
    assert ble.irq_exceptions == 0 and ble.handler is not None, "an exception left the IRQ handler"
    await until(lambda: len(ble.adverts) > adverts)  # tried again from a task
    assert link.adv_failures == 1
    # a bug in a callback the handler runs: caught, counted, the next events still arrive
    on_link = link.on_link
    link.on_link = lambda: 1 // 0
    ble.central_connect(2)
    link.on_link = on_link
    assert ble.irq_exceptions == 0 and link.irq_errors == 1 and link.conn == 2
    ble.central_disconnect(2)
    await connect(board, ble, 3)
    await until(lambda: board.frames_sent > 3)
    seqs = readings(board, ble)
    assert seqs[0] == 0, "nothing was acknowledged: everything again"
    assert not task.done()
    task.cancel()

asyncio.run(scenario())
print("IRQ OK")
"""


def test_irq_handler_survives_a_failing_advertise_and_a_callback_bug(
    micropython: MicroPython, built_dir: Path, profile: str
) -> None:
    out = run(micropython, built_dir, profile, IRQ_SURVIVES)
    assert "IRQ OK" in out and "Unhandled exception" not in out, out


IRQ_NO_ALLOC = r"""
board, ble = make()
link = board.link
ble.connected.add(1)
ble.values[link.h_control] = p.encode_ack(0, board.boot_id)  # the stack holds the written value
write = (3, (1, link.h_control))
# a connection, its MTU, and six control writes before the control task gets to run
events = ((1, (1, 0, b"\x00\x00\x00\x00\x00\x01")), (21, (1, 247))) + (write,) * 6
handler = ble.handler
gc.collect()
gc.disable()
before = gc.mem_alloc()
for event, data in events:
    handler(event, data)
allocated = gc.mem_alloc() - before
gc.enable()
assert allocated == 0, "the IRQ handler allocated %d bytes" % allocated
for i in range(6):
    assert board.link.take_write() == p.encode_ack(0, board.boot_id)
assert board.link.take_write() is None
print("NO ALLOC OK")
"""


def test_irq_handler_allocates_nothing_of_its_own(micropython: MicroPython, built_dir: Path, profile: str) -> None:
    out = run(micropython, built_dir, profile, IRQ_NO_ALLOC)
    assert "NO ALLOC OK" in out, out


RACE = r"""
board, ble = make()

async def scenario():
    task = asyncio.create_task(board.run())
    await connect(board, ble, 1)
    await until(lambda: board.frames_sent >= 2)
    sent = readings(board, ble)
    write(board, ble, p.encode_ack(sent[-1], board.boot_id), 1)
    await until(lambda: board.ring.oldest == sent[-1] + 1)
    first = board.ring.oldest
    # the link drops and a central connects again while a frame is being notified, before the
    # board has moved its send cursor on: that frame was never acknowledged, so it comes again
    ble.after_notify = (board.link.h_readings, lambda: (ble.central_disconnect(1), ble.central_connect(2)))
    await until(lambda: ble.after_notify is None)
    readings(board, ble)
    ble.mtu_exchanged(247, 2)
    write(board, ble, p.encode_time_sync(E0 + 5000), 2)
    await until(lambda: board.frames_sent >= 6)
    contiguous(readings(board, ble), first)
    assert not task.done()
    task.cancel()

asyncio.run(scenario())
print("RACE OK")
"""


def test_an_irq_between_notify_and_advance_skips_no_reading(
    micropython: MicroPython, built_dir: Path, profile: str
) -> None:
    out = run(micropython, built_dir, profile, RACE)
    assert "RACE OK" in out, out


HEAP_GUARD = r"""
import peripheral
board, ble = make()

async def scenario():
    task = asyncio.create_task(board.run())
    await connect(board, ble, 1)
    await until(lambda: board.frames_sent >= 1)
    sent = readings(board, ble)
    write(board, ble, p.encode_ack(sent[-1], board.boot_id), 1)
    await until(lambda: board.ring.oldest == sent[-1] + 1)
    first = board.ring.oldest
    # something else holds the heap: BTstack's copy of a notification might not fit, and on
    # the port a failed copy is not even checked, so the board must not try
    ballast = []
    gc.collect()
    while gc.mem_free() > peripheral.NOTIFY_HEAP_RESERVE - 512:
        ballast.append(bytearray(128))
    frames, notified = board.frames_sent, len(ble.notified)
    await until(lambda: board.link.notify_deferred >= 3)
    assert board.frames_sent == frames and len(ble.notified) == notified, "notified with the heap below the reserve"
    ballast = None
    gc.collect()
    await until(lambda: board.frames_sent >= frames + 3)
    contiguous(readings(board, ble), first)
    assert not task.done()
    task.cancel()

asyncio.run(scenario())
print("HEAP GUARD OK")
"""


def test_pico_w_holds_notifications_while_the_heap_is_short(micropython: MicroPython, built_dir: Path) -> None:
    out = run(micropython, built_dir, "picow", HEAP_GUARD)
    assert "HEAP GUARD OK" in out, out


SENSOR_RATE = r"""
sensor = SimSensor()
sensor.MAX_RATE_HZ = 30  # as a VL53L0X: its timing budget allows about 30 measurements a second
board, ble = make(sensor, rate_hz=20)
ble.central_connect(1)
write(board, ble, p.encode_set_rate(40), 1)
write(board, ble, p.encode_set_rate(30), 1)
async def control():
    task = asyncio.create_task(board.control_task())
    await until(lambda: board.link.pending_writes() == 0)
    task.cancel()
asyncio.run(control())
assert board.sampler.rate_hz == 30 and board.malformed == 1, (board.sampler.rate_hz, board.malformed)
print("RATE OK")
"""


def test_set_rate_beyond_the_sensors_limit_is_refused(micropython: MicroPython, built_dir: Path) -> None:
    out = run(micropython, built_dir, "esp32", SENSOR_RATE)
    assert "RATE OK" in out, out
