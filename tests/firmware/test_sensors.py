"""Sensor drivers at the level of pins and I2C registers, against the test `machine` stand-in."""

from __future__ import annotations

from tests.firmware.helpers import run_board
from tests.parts import MicroPython

HCSR04 = r"""
import machine
from machine import Pin
from sensors import ERR_RANGE, ERR_TIMEOUT
from sensors.hcsr04 import HCSR04, pulse_to_mm

trig, echo = Pin(5, Pin.OUT), Pin(18, Pin.IN)
s = HCSR04(trig, echo, timeout_us=25000)
machine.LOG.clear()
# 1749 us round trip = 300 mm; 58 us per cm in the datasheet
machine.PULSES[:] = [1749, 5831, -1, -2, 50, 30000, 23000]
got = [s.read() for _ in range(7)]
assert got[0] == 299 and got[1] == 1000, got
assert got[2] == ERR_TIMEOUT and got[3] == ERR_TIMEOUT, "no echo is a timeout, not a crash"
assert got[4] == ERR_RANGE, "8 mm is below the sensor's range"
assert got[5] == ERR_TIMEOUT, "a pulse longer than the timeout"
assert got[6] == 3944, "a 23 ms echo is 3.94 m, still in range"
# every read: TRIG low, high, low, then time_pulse_us on ECHO waiting for a high pulse
writes = [(pin, v) for (_t, pin, v) in machine.LOG]
assert writes[:3] == [(5, 0), (5, 1), (5, 0)], writes[:3]
assert len(writes) == 3 * 7
t_high = machine.LOG[1][0]; t_low = machine.LOG[2][0]
assert t_low - t_high >= 10, "trigger pulse must last at least 10 us"
assert machine.PULSE_CALLS[0] == (18, 1, 25000)
assert pulse_to_mm(5831) == 1000
# ECHO still high from the last ping (no echo holds it about 38 ms): the sensor would ignore a
# trigger, and time_pulse_us would time what is left of that pulse as if it were a distance
from sensors import ERR_BUSY
machine.LOG.clear(); del machine.PULSE_CALLS[:]
machine.PULSES[:] = [700]
echo._value = 1
assert s.read() == ERR_BUSY and not machine.LOG and not machine.PULSE_CALLS, "triggered into a busy sensor"
echo._value = 0
assert s.read() == 120
print("HCSR04 OK")
"""

VL53 = r"""
import machine
import config
from fake_vl53l0x import FakeVL53L0X
from sensors import ERR_BUS, ERR_RANGE, ERR_TIMEOUT
from sensors.vl53l0x import VL53L0X

dev = FakeVL53L0X([512, 8190, 1234, 40], stop_variable=0x5A, ready_after=2)
machine.I2C_DEVICES.clear(); machine.I2C_DEVICES[0x29] = dev
pins = config.PINS[PROFILE]  # the board's default wiring
i2c = machine.I2C(0, scl=machine.Pin(pins["scl"]), sda=machine.Pin(pins["sda"]))
s = VL53L0X(i2c)
assert s.stop_variable == 0x5A, "stop variable read from the private page"
assert dev.mode == 0x02, "continuous back-to-back ranging started"
assert (0x91, 0x5A) in dev.log, "stop variable written back before starting"
assert dev.regs[0x89] & 1 == 1, "2V8 I/O mode"
assert dev.regs[0x0A] == 0x04, "interrupt on new sample ready"
assert dev.regs[0x01] == 0xE8
assert s.read() == 512
assert s.read() == ERR_RANGE, "8190 means nothing in range"
assert s.read() == 1234
assert s.read() == 40
assert s.read() == ERR_TIMEOUT, "no new sample: a timeout, not a hang"
# every sample read clears the interrupt
assert sum(1 for w in dev.log if w == (0x0B, 0x01)) == 1 + 4
# bus errors are counted, not raised
dev.ranges = [700]; dev.fail_reads = 1
assert s.read() == ERR_BUS
assert s.read() == 700
# a wrong chip is refused at start-up with a clear error
machine.I2C_DEVICES[0x30] = FakeVL53L0X([], model_id=0x11)
try:
    VL53L0X(i2c, 0x30)
    raise AssertionError("wrong model id accepted")
except OSError as e:
    assert "model id 0x11" in str(e)
try:
    VL53L0X(i2c, 0x31)
    raise AssertionError("missing device accepted")
except OSError:
    pass
print("VL53 OK")
"""

SIM_AND_FACTORY = r"""
import machine
from sensors import make_sensor, ERR_TIMEOUT
from sensors.sim import SimSensor
import config

s = SimSensor(low=100, high=300, period=4, error_every=5)
assert [s.read() for _ in range(10)] == [100, 200, 300, 200, ERR_TIMEOUT, 200, 300, 200, 100, ERR_TIMEOUT]
assert SimSensor().read() == SimSensor().read(), "deterministic"

cfg = config.merge({"serial": "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab", "board": PROFILE, "sensor": "hcsr04",
                    "pins": {"trigger": 12, "echo": 14}})
h = make_sensor(cfg)
assert (h.trigger.id, h.echo.id, h.timeout_us) == (12, 14, 30000)
from fake_vl53l0x import FakeVL53L0X
machine.I2C_DEVICES[0x29] = FakeVL53L0X([99])
# the board's default pins: a VL53L0X on them works on this board's port
cfg = config.merge({"serial": "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab", "board": PROFILE, "sensor": "vl53l0x"})
assert cfg["pins"] == config.PINS[PROFILE], cfg["pins"]
v = make_sensor(cfg)
assert v.read() == 99
for bad, key in (({"serial": ""}, "serial"), ({"sensor": "lidar"}, "sensor"), ({"rate_hz": 51}, "rate_hz"),
                 ({"rate_hz": "20"}, "rate_hz"), ({"buffer_readings": 0}, "buffer_readings")):
    over = {"serial": "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab"}
    over.update(bad)
    try:
        config.merge(over)
        raise AssertionError("accepted %r" % bad)
    except ValueError as e:
        assert key in str(e), str(e)
try:
    config.load("/nonexistent/config.json")
    raise AssertionError("missing config accepted")
except ValueError as e:
    assert "stedi firmware flash" in str(e)
# each sensor's own rate limit: the HC-SR04's echo and the VL53L0X's timing budget
for sensor, top in (("hcsr04", 20), ("vl53l0x", 30), ("sim", 50)):
    over = {"serial": "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab", "board": PROFILE, "sensor": sensor}
    assert config.merge(dict(over, rate_hz=top))["rate_hz"] == top
    if top < 50:
        try:
            config.merge(dict(over, rate_hz=top + 1))
            raise AssertionError("%s accepted at %d Hz" % (sensor, top + 1))
        except ValueError as e:
            assert ("rate_hz must be an integer 1..%d for a %s" % (top, sensor)) in str(e), str(e)
from sensors.hcsr04 import HCSR04
from sensors.vl53l0x import VL53L0X
assert HCSR04.MAX_RATE_HZ == config.MAX_RATE_HZ["hcsr04"] and VL53L0X.MAX_RATE_HZ == config.MAX_RATE_HZ["vl53l0x"]
print("SIM OK")
"""


def test_hcsr04_pins(micropython: MicroPython, profile: str) -> None:
    assert "HCSR04 OK" in run_board(micropython, HCSR04, profile=profile)


def test_vl53l0x_registers(micropython: MicroPython, profile: str) -> None:
    assert "VL53 OK" in run_board(micropython, f"PROFILE = {profile!r}\n" + VL53, profile=profile)


def test_sim_sensor_factory_and_config(micropython: MicroPython, profile: str) -> None:
    assert "SIM OK" in run_board(micropython, f"PROFILE = {profile!r}\n" + SIM_AND_FACTORY, profile=profile)
