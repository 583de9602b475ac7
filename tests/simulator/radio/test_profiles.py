"""Board profiles: the shims refuse what an ESP32 or a Pico W refuses, with the port's own error
texts (micropython/micropython ports/esp32, ports/rp2, extmod/modbluetooth.c; see
simulator/shims/_board.py), and behave as that port's BLE stack does under back-pressure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.parts import MicroPython

PINS = r"""
import json, machine

def attempt(f):
    try:
        f()
        return "ok"
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)

P = machine.Pin
out = {}
for bus, scl, sda in ((0, 22, 21), (0, 5, 4), (1, 3, 2), (0, 4, 5), (1, 5, 4), (0, 5, 6), (2, 5, 4)):
    out["i2c %d %d %d" % (bus, scl, sda)] = attempt(lambda: machine.I2C(bus, scl=P(scl), sda=P(sda)))
out["softi2c 22 21"] = attempt(lambda: machine.SoftI2C(P(22), P(21)).scan())
i2c_in = machine.I2C(0, scl=P(34), sda=P(21)) if out["i2c 0 22 21"] == "ok" else None
out["i2c input-only scan"] = i2c_in.scan() if i2c_in else None
for t in (1000, 8388, 8389, 60000, -1):
    out["wdt %d" % t] = attempt(lambda: machine.WDT(timeout=t))
for a in (26, 29, 34, 3):
    out["adc %d" % a] = attempt(lambda: machine.ADC(P(a)))
out["adc channel 0"] = attempt(lambda: machine.ADC(0))
for p in (20, 23, 34, 40, "LED", "GP22", "GP24"):
    out["out %s" % p] = attempt(lambda: P(p, P.OUT))
out["in 34"] = attempt(lambda: P(34, P.IN))
print(json.dumps(out))
import sys
sys.exit(0)  # the watchdogs' threads would keep the interpreter alive
"""

OK = "ok"
EXPECTED = {
    "esp32": {
        "i2c 0 22 21": OK, "i2c 0 5 4": OK, "i2c 1 3 2": OK, "i2c 0 4 5": OK, "i2c 1 5 4": OK, "i2c 0 5 6": OK,
        "i2c 2 5 4": "ValueError: I2C(2) doesn't exist",
        "softi2c 22 21": OK,
        "i2c input-only scan": [],  # accepted, but nothing answers on a bus it cannot drive
        "wdt 1000": OK, "wdt 8388": OK, "wdt 8389": OK, "wdt 60000": OK,
        "wdt -1": "ValueError: WDT timeout too short",
        "adc 26": OK, "adc 29": "ValueError: invalid pin", "adc 34": OK, "adc 3": "ValueError: invalid pin",
        "adc channel 0": OK,  # GPIO 0 is an ADC2 pin
        "out 20": "ValueError: invalid pin", "out 23": OK, "out 34": "ValueError: pin can only be input",
        "out 40": "ValueError: invalid pin", "out LED": "ValueError: invalid pin",
        "out GP22": "ValueError: invalid pin", "out GP24": "ValueError: invalid pin",
        "in 34": OK,
    },
    "picow": {
        "i2c 0 22 21": "ValueError: bad SCL pin",  # the ESP32 wiring: SCL 22 is even
        "i2c 0 5 4": OK, "i2c 1 3 2": OK,
        "i2c 0 4 5": "ValueError: bad SCL pin",
        "i2c 1 5 4": "ValueError: bad SCL pin",  # GPIO 5 is I2C0's, not I2C1's
        "i2c 0 5 6": "ValueError: bad SDA pin",  # GPIO 6 is I2C1's
        "i2c 2 5 4": "ValueError: I2C(2) doesn't exist",
        "softi2c 22 21": OK,  # bit-banged: any pins
        "i2c input-only scan": None,
        "wdt 1000": OK, "wdt 8388": OK,
        "wdt 8389": "ValueError: timeout exceeds 8388", "wdt 60000": "ValueError: timeout exceeds 8388",
        "wdt -1": "ValueError: timeout exceeds 8388",  # taken as unsigned
        "adc 26": OK, "adc 29": OK, "adc 34": "ValueError: invalid pin",
        "adc 3": "ValueError: Pin doesn't have ADC capabilities",
        "adc channel 0": OK,
        "out 20": OK, "out 23": OK, "out 34": "ValueError: invalid pin", "out 40": "ValueError: invalid pin",
        "out LED": OK, "out GP22": OK, "out GP24": 'ValueError: unknown named pin "GP24"',
        "in 34": "ValueError: invalid pin",
    },
}


@pytest.mark.parametrize("profile", ["esp32", "picow"])
def test_pins_i2c_adc_and_watchdog_follow_the_port(
    micropython: MicroPython, shim_path: tuple[Path, ...], profile: str
) -> None:
    proc = micropython.run(PINS, path=shim_path, env={"STEDI_BOARD_PROFILE": profile})
    assert json.loads(proc.stdout) == EXPECTED[profile]


def test_an_unknown_profile_is_refused(micropython: MicroPython, shim_path: tuple[Path, ...]) -> None:
    proc = micropython.run("import machine\nmachine.Pin(2)\n", path=shim_path, env={"STEDI_BOARD_PROFILE": "nrf52"},
                           check=False)
    assert proc.returncode == 1 and "STEDI_BOARD_PROFILE must be esp32 or picow" in proc.stdout + proc.stderr


# The radio's frames are fed straight into the shim (no radio process): the IRQ path as the
# reader thread drives it.
BLE_SETUP = r"""
import gc, json, time, bluetooth
ble = bluetooth.BLE()
ble.active(True)
((h,),) = ble.gatts_register_services(((bluetooth.UUID(0x181A), ((bluetooth.UUID(0x2A6E),
    bluetooth.FLAG_WRITE | bluetooth.FLAG_NOTIFY),)),))
def connect(conn=1, mtu=247):
    ble._on_frame({"t": "connect", "conn": conn, "addr": "11:22:33:44:55:66"})
    ble._on_frame({"t": "mtu", "conn": conn, "mtu": mtu})
def write(data, conn=1):
    ble._on_frame({"t": "write", "conn": conn, "h": h, "d": data})
"""

IRQ = BLE_SETUP + r"""
seen = []
kept = []
def handler(event, data):
    seen.append(event)
    if event == 1:
        kept.append(data[2])  # the address memoryview, kept past the call (a bug on a board)
        kept.append(bytes(data[2]))
    if event == 3 and ble.gatts_read(h) == b"\x01":
        raise ValueError("boom")
ble.irq(handler)
connect()
write("00")
write("01")  # raises in the handler
write("02")  # the handler is gone: not delivered
after_raise = list(seen)
ble.irq(handler)  # the program registers it again
write("03")
print(json.dumps({"seen": after_raise, "rearmed": seen[len(after_raise):],
                  "addr_during": list(kept[1]), "addr_after": list(bytes(kept[0]))}))
"""


@pytest.mark.parametrize("profile", ["esp32", "picow"])
def test_an_exception_in_the_irq_handler_disables_it_as_modbluetooth_does(
    micropython: MicroPython, shim_path: tuple[Path, ...], profile: str
) -> None:
    proc = micropython.run(IRQ, path=shim_path, env={"STEDI_BOARD_PROFILE": profile})
    lines = proc.stdout.splitlines()
    out = json.loads(lines[-1])
    assert out["seen"] == [1, 21, 3, 3], "the third write is not delivered: the handler was disabled"
    assert out["rearmed"] == [3]
    assert "Unhandled exception in IRQ callback handler" in proc.stdout and "ValueError: boom" in proc.stdout
    assert out["addr_during"] == [0x11, 0x22, 0x33, 0x44, 0x55, 0x66]
    assert out["addr_after"] != out["addr_during"], "the memoryview is not valid after the handler returned"


BACK_PRESSURE = BLE_SETUP + r"""
connect()
def burst(n, size=100):
    out = []
    for i in range(n):
        try:
            ble.gatts_notify(1, h, bytes(size))
            out.append("ok")
        except OSError as e:
            out.append("OSError %d" % e.errno)
    return out
first = burst(4)
held = len(ble._held)
time.sleep_ms(120)  # 20/s: two notifications' airtime
later = burst(2)
print(json.dumps({"first": first, "held": held, "later": later}))
"""


def test_nimble_refuses_with_enomem_when_out_of_buffers(micropython: MicroPython,
                                                       shim_path: tuple[Path, ...]) -> None:
    proc = micropython.run(BACK_PRESSURE, path=shim_path, env={"STEDI_BOARD_PROFILE": "esp32",
                                                                "STEDI_AIRTIME": "20/2"})
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out == {"first": ["ok", "ok", "OSError 12", "OSError 12"], "held": 0, "later": ["ok", "ok"]}


def test_btstack_queues_on_the_heap_and_never_refuses(micropython: MicroPython,
                                                      shim_path: tuple[Path, ...]) -> None:
    proc = micropython.run(BACK_PRESSURE, path=shim_path, env={"STEDI_BOARD_PROFILE": "picow",
                                                                "STEDI_AIRTIME": "20/2"})
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["first"] == ["ok"] * 4 and out["held"] == 2 and out["later"] == ["ok", "ok"]


HEAP = BLE_SETUP + r"""
connect()
gc.collect()
free0 = gc.mem_free()
for i in range(20):
    ble.gatts_notify(1, h, bytes(244))
gc.collect()
cost = free0 - gc.mem_free()
held = len(ble._held)
n = 0
error = None
try:
    while n < 2000:
        ble.gatts_notify(1, h, bytes(244))
        n += 1
except MemoryError:
    error = "MemoryError"
queued = len(ble._held)
ble._on_frame({"t": "disconnect", "conn": 1})  # the stack drops what it held for the link
gc.collect()
print(json.dumps({"cost": cost, "held": held, "error": error, "queued": queued, "after": len(ble._held),
                  "recovered": gc.mem_free() - free0}))
"""


def test_btstack_queue_costs_heap_until_a_memory_error(micropython: MicroPython,
                                                       shim_path: tuple[Path, ...]) -> None:
    proc = micropython.run(HEAP, path=shim_path, heap="64k",
                           env={"STEDI_BOARD_PROFILE": "picow", "STEDI_AIRTIME": "2/1"})
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["held"] >= 18 and out["cost"] >= out["held"] * 244, out
    assert out["error"] == "MemoryError" and out["queued"] > out["held"], out
    assert out["after"] == 0 and out["recovered"] > -2048, out


# The firmware's own GATT table on each stack, then the same table with one more service of three
# 128-bit notifying characteristics, as a firmware that grew would register it.
ATT_TABLE = r"""
import json, bluetooth
from peripheral import Peripheral
ble = bluetooth.BLE()
Peripheral(ble, "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab", "1.0.0", "STEDI-1", "STEDI")
def served():
    return {s["uuid"]: [c["uuid"] for c in s["chars"]] for s in ble._services}
firmware = served()
firmware_bytes = ble.att_db_bytes
N = bluetooth.FLAG_NOTIFY
grown = (bluetooth.UUID("0b5e55ed-0000-4000-8000-0000000000a0"),
         tuple((bluetooth.UUID("0b5e55ed-0000-4000-8000-0000000000a%d" % i), N) for i in (1, 2, 3)))
peripheral_services = [(bluetooth.UUID(s["uuid"]), tuple((bluetooth.UUID(c["uuid"]), c["flags"]) for c in s["chars"]))
                       for s in ble._services]
handles = ble.gatts_register_services(tuple(peripheral_services) + (grown,))
print(json.dumps({"firmware": firmware, "firmware_bytes": firmware_bytes, "grown": served(),
                  "grown_bytes": ble.att_db_bytes, "grown_handles": list(handles[-1])}))
"""


@pytest.mark.parametrize("profile", ["esp32", "picow"])
def test_btstack_leaves_out_what_does_not_fit_its_512_byte_attribute_table(
    micropython: MicroPython, shim_path: tuple[Path, ...], profile: str
) -> None:
    from tests.parts import REPO

    # the board modules from source, compiled here: a heap larger than a board's
    proc = micropython.run(ATT_TABLE, path=(*shim_path, REPO / "firmware" / "board"), heap="512k",
                           env={"STEDI_BOARD_PROFILE": profile})
    out = json.loads(proc.stdout.splitlines()[-1])
    firmware = out["firmware"]
    # the firmware's table is whole on both stacks: STEDI service (3 characteristics), Device
    # Information (4) and Battery (1)
    assert sorted(len(chars) for chars in firmware.values()) == [1, 3, 4]
    grown_service = "0b5e55ed-0000-4000-8000-0000000000a0"
    added = [f"0b5e55ed-0000-4000-8000-0000000000a{i}" for i in (1, 2, 3)]
    assert {k: v for k, v in out["grown"].items() if k != grown_service} == firmware
    if profile == "esp32":
        assert out["firmware_bytes"] is None  # NimBLE sizes its table at registration: no fixed limit
        assert out["grown"][grown_service] == added
    else:
        # BTstack's arithmetic (simulator/shims/_board.py): 65 bytes of version, GAP and GATT
        # services and end tag; the STEDI service 191, Device Information 94, Battery 41.
        assert out["firmware_bytes"] == 391
        # the grown table: the service and its first characteristic fit, the second's value and
        # the third do not, and registration still "succeeds" as it does on a Pico W
        assert out["grown"][grown_service] == added[:1]
        assert out["grown_bytes"] <= 512
        assert "left out" in proc.stderr
        # handles as BTstack numbers them: after GAP (1-3) and GATT (4-6), so never 1
        assert min(out["grown_handles"]) > 6
