"""The machine and bluetooth shims under the real MicroPython interpreter, without a radio."""

from __future__ import annotations

import json
from pathlib import Path

from simulator import physics
from tests.parts import MicroPython
from tests.simulator.radio.conftest import SHIMS

SERIAL = "0b5e55ed-0000-4000-8000-000000000042"

MACHINE_SCRIPT = """
import json, time, machine
i2c = machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21), freq=400000)
out = {"scan": i2c.scan(), "model": i2c.readfrom_mem(0x29, 0xC0, 1)[0]}
samples = []
for k in range(10):
    i2c.writeto_mem(0x29, 0x00, b"\\x01")          # single shot
    started = i2c.readfrom_mem(0x29, 0x00, 1)[0]   # start bit clears itself
    t_start = time.ticks_us()
    while not i2c.readfrom_mem(0x29, 0x13, 1)[0] & 0x07:  # ready after the timing budget
        time.sleep_us(200)
    took_us = time.ticks_diff(time.ticks_us(), t_start)
    t0 = time.time_ns() // 1000000 - 1
    ready = 1
    buf = bytearray(12)
    i2c.readfrom_mem_into(0x29, 0x14, buf)
    i2c.writeto_mem(0x29, 0x0B, b"\\x01")
    t1 = time.time_ns() // 1000000
    samples.append([t0, t1, (buf[10] << 8) | buf[11], buf[0] >> 3, started, ready, took_us])
out["samples"] = samples
echo = []
trig, pin = machine.Pin(5, machine.Pin.OUT), machine.Pin(18, machine.Pin.IN)
out["no trigger"] = machine.time_pulse_us(pin, 1, 1000)  # ECHO never rises: -2
for k in range(20):
    t0 = time.time_ns() // 1000000
    trig.value(1)
    time.sleep_us(10)
    trig.value(0)
    us = machine.time_pulse_us(pin, 1, 30000)
    echo.append([t0, time.time_ns() // 1000000, us, pin.value()])
    time.sleep_ms(45)  # no echo holds ECHO high 38 ms: let it end
out["echo"] = echo
try:
    i2c.readfrom_mem(0x30, 0, 1)
except OSError as e:
    out["enodev"] = e.args[0]
i2c.writeto_mem(0x29, 0x8A, b"\\x31")  # move the sensor to 0x31
out["moved"] = i2c.scan()
adc = machine.ADC(machine.Pin(34))
out["adc"] = [adc.read_u16(), adc.read_uv(), adc.read()]
out["uid"] = list(machine.unique_id())
p = machine.Pin(2, machine.Pin.OUT, value=1)
p.toggle()
out["pin"] = p.value()
out["freq"] = machine.freq()
print(json.dumps(out))
"""


def test_machine_sensors_read_the_physics(micropython: MicroPython, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"serial": SERIAL}))
    proc = micropython.run(MACHINE_SCRIPT, path=[SHIMS], cwd=tmp_path)
    out = json.loads(proc.stdout)
    seed = physics.seed_for_serial(SERIAL)
    assert out["scan"] == [0x29] and out["model"] == 0xEE
    for t0, t1, mm, status, started, ready, took_us in out["samples"]:
        assert started == 0 and ready and 33_000 <= took_us < 60_000, took_us
        expected = {physics.distance_mm(seed, t) for t in range(t0, t1 + 1)}
        if status == 11:  # valid
            assert mm in expected
        else:  # dropout: out of range
            assert status == 4 and mm == 8190 and None in expected
    assert out["no trigger"] == -2
    for t0, t1, us, level_after in out["echo"]:
        # a dropout is no echo: ECHO high 38 ms, longer than the 30 ms timeout
        expected_us = {-1 if d is None else int(d * 5.831) for d in (physics.distance_mm(seed, t) for t in range(t0, t1 + 1))}
        assert us in expected_us and level_after == (1 if us == -1 else 0)
    assert out["enodev"] == 19
    assert out["moved"] == [0x31]
    u16, uv, raw = out["adc"]
    assert 2_000_000 < uv < 2_100_000 and abs(u16 - uv * 65535 // 3_300_000) <= 1 and raw == u16 >> 4
    assert len(out["uid"]) == 6 and out["pin"] == 0 and out["freq"] == 160_000_000


def test_watchdog_and_reset_outside_a_board_exit_with_the_reset_status(micropython: MicroPython) -> None:
    proc = micropython.run("import machine\nmachine.reset()\n", path=[SHIMS], check=False)
    assert proc.returncode == 100  # _board.EXIT_HARD_RESET
    proc = micropython.run("import machine\nmachine.soft_reset()\n", path=[SHIMS], check=False)
    assert proc.returncode == 101


BLUETOOTH_SCRIPT = """
import bluetooth, json
out = {}
u16 = bluetooth.UUID(0x180F)
u128 = bluetooth.UUID("57ed1000-5e7d-4b1a-9f3e-2c4d6a8b0e10")
out["uuid"] = [bytes(u16).hex(), bytes(u128).hex(), str(u16), str(u128), u16 == bluetooth.UUID(0x180F),
               bluetooth.UUID(bytes(u128)) == u128, len(u128)]
ble = bluetooth.BLE()
out["singleton"] = ble is bluetooth.BLE()
try:
    ble.gatts_register_services(())
except OSError:
    out["inactive_error"] = True
ble.active(True)
out["active"] = ble.active()
ble.config(gap_name="X1", mtu=200)
out["config"] = [ble.config("gap_name").decode(), ble.config("mtu"), ble.config("mac")[0], len(ble.config("mac")[1])]
try:
    ble.config("nonsense")
except ValueError:
    out["unknown_config"] = True
N, R, W = bluetooth.FLAG_NOTIFY, bluetooth.FLAG_READ, bluetooth.FLAG_WRITE
handles = ble.gatts_register_services((
    (u128, ((bluetooth.UUID(0x2A00), R | N), (bluetooth.UUID(0x2A01), W, ((bluetooth.UUID(0x2901), R),)))),
    (u16, ((bluetooth.UUID(0x2A19), R),)),
))
out["handles"] = handles
ble.gatts_write(handles[0][0], b"abc")
out["read"] = ble.gatts_read(handles[0][0]).decode()
ble.gatts_set_buffer(handles[0][1], 4, True)
try:
    ble.gatts_notify(7, handles[0][0], b"x")
except OSError as e:
    out["notify_unconnected"] = e.args[0]
try:
    ble.gap_advertise(100000, bytes(32))
except OSError:
    out["adv_too_long"] = True
ble.gap_advertise(100000, b"\\x02\\x01\\x06")
ble.gap_advertise(None)
out["disconnect_unknown"] = ble.gap_disconnect(3)
print(json.dumps(out))
"""


def test_bluetooth_api_semantics_without_a_radio(micropython: MicroPython, tmp_path: Path,
                                                shim_path: tuple[Path, ...]) -> None:
    # the shims precompiled, as a board's built-in modules are: not compiled in its 96 KiB heap
    proc = micropython.run(BLUETOOTH_SCRIPT, path=shim_path, cwd=tmp_path)
    lines = proc.stdout.strip().splitlines()
    assert "alone in the air" in lines[0]
    out = json.loads(lines[-1])
    assert out["uuid"] == [
        "0f18",
        "100e8b6a4d2c3e9f1a4b7d5e0010ed57",
        "UUID(0x180f)",
        "UUID('57ed1000-5e7d-4b1a-9f3e-2c4d6a8b0e10')",
        True,
        True,
        16,
    ]
    assert out["singleton"] and out["inactive_error"] and out["active"]
    assert out["config"] == ["X1", 200, 1, 6] and out["unknown_config"]
    # service 1, char 2 (decl) + 3 (value) + 4 (CCCD), char 5 + 6, descriptor 7; service 8, char 9 + 10
    assert out["handles"] == [[3, 6, 7], [10]]
    assert out["read"] == "abc"
    assert out["notify_unconnected"] == 107  # ENOTCONN
    assert out["adv_too_long"] and out["disconnect_unknown"] is False
