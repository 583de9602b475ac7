# The board's config.json: serial number, board, sensor and pins, rate, buffer size, timing.
# Missing keys take the defaults below (the pins those of the board); bad values raise
# ValueError naming the key, and a pin or watchdog value the board's MicroPython port would
# refuse at boot is refused here with that port's rule, before anything starts.
#
# Runs on the board (MicroPython) and in `stedi firmware flash` (CPython), so that a config
# the board cannot boot with is refused before it is flashed.  The simulator has its own copy
# of the ports' rules (simulator/shims/_board.py), to referee this one.

import json
import sys

BOARDS = ("esp32", "picow")

# Default wiring per board.  ESP32 DevKit: the VL53L0X on the common SCL 22 / SDA 21, the
# HC-SR04 on 5 / 18.  Pico W: the VL53L0X on I2C0's default pins, SCL GP5 / SDA GP4
# (docs/rp2/quickref.rst), the HC-SR04 on GP14 / GP15.  An HC-SR04's echo is 5 V: both boards
# need a divider on it.
PINS = {
    "esp32": {"trigger": 5, "echo": 18, "scl": 22, "sda": 21},
    "picow": {"trigger": 14, "echo": 15, "scl": 5, "sda": 4},
}

DEFAULTS = {
    "serial": "",
    "board": None,  # None: from sys.platform on a board (rp2: picow), else esp32
    "sensor": "sim",
    "rate_hz": 20,
    "buffer_readings": 3000,  # 18 KB ring: 2.5 minutes at 20 Hz without a gateway (fits a 96 KiB heap)
    "pins": None,  # None or some of them: the board's PINS for the rest
    "i2c_bus": 0,
    "i2c_address": 0x29,
    "echo_timeout_us": 30000,
    "sim": {},
    "batch_ms": 2000,
    "pace_ms": 15,
    "status_ms": 1000,
    "watchdog_ms": 8000,
    "autostart": True,
    "battery_adc_pin": None,
    "battery_empty_u16": 37000,
    "battery_full_u16": 52000,
    "model": "STEDI-ST1",
}

SENSORS = ("hcsr04", "vl53l0x", "sim")

# The fastest rate each sensor measures at: the drivers' MAX_RATE_HZ (sensors/hcsr04.py: an
# echo lasts up to 38 ms; sensors/vl53l0x.py: a 33 ms timing budget).
MAX_RATE_HZ = {"hcsr04": 20, "vl53l0x": 30, "sim": 50}

# rp2's watchdog counts 24 bits at two ticks per us: at most 8388 ms (ports/rp2/machine_wdt.c,
# WDT_TIMEOUT_MAX, "timeout exceeds 8388"); the ESP32's has no limit of its own.
WATCHDOG_MAX_MS = {"esp32": 60000, "picow": 8388}

_PLATFORM_BOARD = {"rp2": "picow", "esp32": "esp32"}

# A started machine.WDT cannot be stopped ("Once it is running the timeout cannot be changed and
# the WDT cannot be stopped either", docs/library/machine.WDT.rst): it keeps counting after
# Ctrl-C, in the REPL and over soft resets (neither ports/rp2/main.c nor ports/esp32/main.c stops
# it; rp2's is the RP2040's hardware watchdog, esp32's a task-watchdog user), so it would reset
# a board in the middle of a slow `stedi firmware flash`.  Only a hard reset stops it.  So flash
# writes this file and hard-resets the board first; main.py removes it and starts no watchdog
# for that one boot, during which the files are copied; the reset after copying boots with it.
FLASH_PENDING = "flash_pending"


def take_flash_pending(path=FLASH_PENDING):
    """True (once) if `stedi firmware flash` asked for a boot without the watchdog."""
    import os

    try:
        os.remove(path)
    except OSError:
        return False
    return True


def _check_int(config, key, low, high):
    v = config[key]
    if not isinstance(v, int) or isinstance(v, bool) or v < low or v > high:
        raise ValueError("config %s must be an integer %d..%d, not %r" % (key, low, high, v))


def _gpio_ok(board, n, output):
    """None if GPIO ``n`` can be used (as an output if ``output``), else why not."""
    if not isinstance(n, int) or isinstance(n, bool):
        return "not a GPIO number"
    if board == "esp32":
        # docs/esp32/quickref.rst: available GPIOs 0-19, 21-23, 25-27, 32-39 (others: "invalid
        # pin"); 1 and 3 are the REPL UART, 6, 7, 8, 11, 16 and 17 the embedded flash; 34-39 are
        # input only ("pin can only be input", ports/esp32/machine_pin.c).
        if not (0 <= n <= 19 or 21 <= n <= 23 or 25 <= n <= 27 or 32 <= n <= 39):
            return "invalid pin (an ESP32 has GPIO 0-19, 21-23, 25-27, 32-39)"
        if n in (1, 3):
            return "the REPL's UART (GPIO 1 and 3), which flashing uses"
        if n in (6, 7, 8, 11, 16, 17):
            return "wired to the ESP32's flash (GPIO 6, 7, 8, 11, 16, 17)"
        if output and n >= 34:
            return "pin can only be input (ESP32 GPIO 34-39)"
        return None
    # ports/rp2/boards/RPI_PICO_W/pins.csv: the Pico W brings out GP0-GP22 and GP26-GP28; GP23,
    # 24, 25 and 29 drive its CYW43 radio.
    if not (0 <= n <= 22 or 26 <= n <= 28):
        return "not a Pico W pin (GP0-GP22, GP26-GP28; GP23-25 and GP29 drive its radio)"
    return None


def _i2c_rule(bus, what):
    # ports/rp2/machine_i2c.h, IS_VALID_SCL/IS_VALID_SDA: SCL odd, SDA even, and bit 1 of the
    # GPIO number is the bus.
    odd = 1 if what == "SCL" else 0
    pins = [n for n in range(29) if n & 1 == odd and (n & 2) >> 1 == bus and (n <= 22 or n >= 26)]
    return "bad %s pin (rp2: I2C%d %s must be an %s GPIO with bit 1 = %d: %s; ports/rp2/machine_i2c.h)" % (
        what, bus, what, "odd" if odd else "even", bus, ", ".join(str(n) for n in pins))


def _check_pins(config):
    board = config["board"]
    pins = config["pins"]
    sensor = config["sensor"]
    used = ()
    if sensor == "hcsr04":
        used = (("trigger", True), ("echo", False))
    elif sensor == "vl53l0x":
        used = (("scl", True), ("sda", True))
        _check_int(config, "i2c_bus", 0, 1)
    for key, output in used:
        why = _gpio_ok(board, pins.get(key), output)
        if why:
            raise ValueError("config pins %s=%r (board %s): %s" % (key, pins.get(key), board, why))
    if sensor == "vl53l0x":
        if pins["scl"] == pins["sda"]:
            raise ValueError("config pins scl and sda must differ")
        if board == "picow":
            bus = config["i2c_bus"]
            scl, sda = pins["scl"], pins["sda"]
            if not (scl & 1 == 1 and (scl & 2) >> 1 == bus):
                raise ValueError("config pins scl=%d (board picow): %s" % (scl, _i2c_rule(bus, "SCL")))
            if not (sda & 1 == 0 and (sda & 2) >> 1 == bus):
                raise ValueError("config pins sda=%d (board picow): %s" % (sda, _i2c_rule(bus, "SDA")))
    elif sensor == "hcsr04" and pins["trigger"] == pins["echo"]:
        raise ValueError("config pins trigger and echo must differ")
    adc = config["battery_adc_pin"]
    if adc is not None:
        if board == "esp32":
            # docs/esp32/quickref.rst: ADC block 1 on 32-39, block 2 on 0, 2, 4, 12-15, 25-27.
            ok = isinstance(adc, int) and (32 <= adc <= 39 or adc in (0, 2, 4, 12, 13, 14, 15, 25, 26, 27))
            rule = "an ESP32 ADC pin (32-39, 0, 2, 4, 12-15, 25-27)"
        else:
            # ports/rp2/machine_adc.c: GPIO 26-29; GP29 is not free on a Pico W.
            ok = adc in (26, 27, 28)
            rule = "GP26, GP27 or GP28 (rp2: \"Pin doesn't have ADC capabilities\" elsewhere)"
        if not ok:
            raise ValueError("config battery_adc_pin=%r (board %s): must be %s" % (adc, board, rule))


def validate(config):
    serial = config["serial"]
    if not isinstance(serial, str) or len(serial) < 4:
        raise ValueError("config serial must be the board's serial number (a UUID), not %r" % serial)
    board = config["board"]
    if board not in BOARDS:
        raise ValueError("config board must be one of %s, not %r" % (", ".join(BOARDS), board))
    running = _PLATFORM_BOARD.get(sys.platform)
    if running and running != board:
        raise ValueError("config board is %s but this is a %s board (sys.platform %s)" % (board, running, sys.platform))
    if config["sensor"] not in SENSORS:
        raise ValueError("config sensor must be one of %s, not %r" % (", ".join(SENSORS), config["sensor"]))
    top = MAX_RATE_HZ[config["sensor"]]
    v = config["rate_hz"]
    if not isinstance(v, int) or isinstance(v, bool) or v < 1 or v > top:
        raise ValueError("config rate_hz must be an integer 1..%d for a %s, not %r" % (top, config["sensor"], v))
    _check_int(config, "buffer_readings", 16, 1000000)
    _check_int(config, "batch_ms", 0, 60000)
    _check_int(config, "pace_ms", 0, 1000)
    _check_int(config, "status_ms", 100, 60000)
    limit = WATCHDOG_MAX_MS[board]
    v = config["watchdog_ms"]
    if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v > limit:
        if board == "picow":
            raise ValueError("config watchdog_ms must be 0 (off) or up to 8388 (board picow), not %r "
                             "(rp2: \"timeout exceeds 8388\", ports/rp2/machine_wdt.c)" % (v,))
        raise ValueError("config watchdog_ms must be an integer 0..%d, not %r" % (limit, v))
    _check_pins(config)
    return config


def merge(overrides):
    config = {}
    for k in DEFAULTS:
        config[k] = DEFAULTS[k]
    for k in overrides:
        config[k] = overrides[k]
    if config["board"] is None:
        config["board"] = _PLATFORM_BOARD.get(sys.platform, "esp32")
    pins = config["pins"] or {}
    if not isinstance(pins, dict):
        raise ValueError("config pins must be an object, e.g. {\"scl\": 5, \"sda\": 4}, not %r" % (pins,))
    board_pins = PINS.get(config["board"], PINS["esp32"])
    full = {}
    for k in board_pins:
        full[k] = board_pins[k]
    for k in pins:
        full[k] = pins[k]
    config["pins"] = full
    return validate(config)


def load(path="config.json"):
    try:
        with open(path) as f:
            overrides = json.load(f)
    except OSError:
        raise ValueError("no %s on the board: run `stedi firmware flash --serial UUID`" % path)
    if not isinstance(overrides, dict):
        raise ValueError("%s must hold a JSON object" % path)
    return merge(overrides)
