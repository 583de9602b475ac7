"""The firmware's sensor drivers against the simulator's sensor timing (simulator/shims/machine.py):
an HC-SR04 whose echo outlasts the last read, and a VL53L0X read faster than its timing budget."""

from __future__ import annotations

import json
from pathlib import Path

from tests.parts import REPO, MicroPython

BOARD = REPO / "firmware" / "board"
SERIAL = "0b5e55ed-0000-4000-8000-000000000042"

ECHO_TAIL = r"""
import json, time, machine
from sensors.hcsr04 import HCSR04
# a timeout shorter than any echo here (the person stands 170 mm or more away: 990 us or more):
# every ping ends with ECHO still high, as a no-echo ping (38 ms) does against the usual 30 ms
short = HCSR04(machine.Pin(5, machine.Pin.OUT), machine.Pin(18, machine.Pin.IN), timeout_us=500)
full = HCSR04(short.trigger, short.echo, timeout_us=30000)
out = {"first": short.read()}
out["right_after"] = full.read()  # ECHO still high: a trigger now is ignored by the sensor
time.sleep_ms(45)
out["later"] = full.read()
print(json.dumps(out))
"""


def test_hcsr04_never_reports_the_tail_of_the_last_echo(micropython: MicroPython, shim_path: tuple[Path, ...],
                                                         tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"serial": SERIAL}))
    out = json.loads(micropython.run(ECHO_TAIL, path=[*shim_path, BOARD], cwd=tmp_path).stdout.splitlines()[-1])
    assert out["first"] == -1, out  # ERR_TIMEOUT: the pulse outlasted the timeout
    assert out["right_after"] == -4, f"the tail of the last echo read as {out['right_after']} mm"  # ERR_BUSY
    assert out["later"] >= 150, out


VL53_RATE = r"""
import json, time, machine
from sensors.vl53l0x import VL53L0X
s = VL53L0X(machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21)))
out = {}
for hz in (50, 30):
    time.sleep_ms(40)
    s.read()  # in step with the ranging
    errors = 0
    for i in range(30):
        t = time.ticks_us()
        if s.read() < 0:
            errors += 1
        wait = 1000000 // hz - time.ticks_diff(time.ticks_us(), t)
        if wait > 0:
            time.sleep_us(wait)
    out[str(hz)] = errors
print(json.dumps(out))
"""


def test_vl53l0x_read_faster_than_its_timing_budget_times_out(micropython: MicroPython,
                                                               shim_path: tuple[Path, ...], tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"serial": SERIAL}))
    out = json.loads(micropython.run(VL53_RATE, path=[*shim_path, BOARD], cwd=tmp_path).stdout.splitlines()[-1])
    # 33 ms per measurement: at 50 Hz about every third read finds nothing new within its 5 ms
    # of polling, which is why the firmware's config allows a VL53L0X 30 Hz at most
    # (a loaded machine may delay a read past its polling now and then: a few at 30 Hz)
    assert out["50"] >= 8 and out["30"] <= 3, out
