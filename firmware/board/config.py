# The board's config.json: serial number, sensor and pins, rate, buffer size, timing.
# Missing keys take the defaults below; bad values raise ValueError naming the key.

import json

DEFAULTS = {
    "serial": "",
    "sensor": "sim",
    "rate_hz": 20,
    "buffer_readings": 3000,  # 18 KB ring: 2.5 minutes at 20 Hz without a gateway (fits a 96 KiB heap)
    "pins": {"trigger": 5, "echo": 18, "scl": 22, "sda": 21},
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


def _check_int(config, key, low, high):
    v = config[key]
    if not isinstance(v, int) or isinstance(v, bool) or v < low or v > high:
        raise ValueError("config %s must be an integer %d..%d, not %r" % (key, low, high, v))


def validate(config):
    serial = config["serial"]
    if not isinstance(serial, str) or len(serial) < 4:
        raise ValueError("config serial must be the board's serial number (a UUID), not %r" % serial)
    if config["sensor"] not in SENSORS:
        raise ValueError("config sensor must be one of %s, not %r" % (", ".join(SENSORS), config["sensor"]))
    _check_int(config, "rate_hz", 1, 50)
    _check_int(config, "buffer_readings", 16, 1000000)
    _check_int(config, "batch_ms", 0, 60000)
    _check_int(config, "pace_ms", 0, 1000)
    _check_int(config, "status_ms", 100, 60000)
    _check_int(config, "watchdog_ms", 0, 60000)
    return config


def merge(overrides):
    config = {}
    for k in DEFAULTS:
        config[k] = DEFAULTS[k]
    for k in overrides:
        config[k] = overrides[k]
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
