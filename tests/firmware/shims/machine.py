# A `machine` stand-in for the firmware's unit tests: pins that record what was
# written, a scripted time_pulse_us, an I2C bus of register-level fake devices,
# a WDT that counts feeds.  Tests reach the recordings through this module.
# Pins, I2C, ADC and WDT take only what the board profile's port takes (env
# STEDI_BOARD_PROFILE, esp32 or picow), through the simulator's rules in _board.py,
# so a firmware that would fail to boot on that port fails here too.

import time

import _board

LOG = []  # (ticks_us, pin id, value) for every Pin.value(v) write
PULSES = []  # results time_pulse_us returns in order (us; -1/-2 for timeouts)
PULSE_CALLS = []  # (pin id, level, timeout_us)
I2C_DEVICES = {}  # address -> device with read(reg) and write(reg, value)
WDTS = []
ADC_VALUES = {}  # pin id -> read_u16 result (or an exception to raise)


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2
    PULL_DOWN = 3

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.gpio = _board.pin_id(id)
        _board.check_pin(self.gpio, mode == Pin.OUT)
        self.id = id
        self.mode = mode
        self._value = 0 if value is None else value

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0
        LOG.append((time.ticks_us(), self.id, self._value))

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


def time_pulse_us(pin, pulse_level, timeout_us=1000000):
    PULSE_CALLS.append((pin.id, pulse_level, timeout_us))
    if not PULSES:
        return -1
    v = PULSES.pop(0)
    return v if v <= timeout_us else -2


class I2C:
    def __init__(self, id=0, *, scl=None, sda=None, freq=400000):
        self.works = _board.check_i2c(id, None if scl is None else scl.gpio, None if sda is None else sda.gpio)
        self.id = id
        self.freq = freq
        self.writes = []  # (addr, reg, value)

    def _device(self, addr):
        dev = I2C_DEVICES.get(addr) if self.works else None
        if dev is None:
            raise OSError(19)  # ENODEV: no ACK from the address
        return dev

    def readfrom_mem_into(self, addr, memaddr, buf):
        dev = self._device(addr)
        for i in range(len(buf)):
            buf[i] = dev.read((memaddr + i) & 0xFF)

    def readfrom_mem(self, addr, memaddr, nbytes):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf):
        dev = self._device(addr)
        for i in range(len(buf)):
            self.writes.append((addr, memaddr + i, buf[i]))
            dev.write((memaddr + i) & 0xFF, buf[i])

    def scan(self):
        return sorted(I2C_DEVICES) if self.works else []


class WDT:
    def __init__(self, id=0, timeout=5000):
        _board.check_wdt(id, timeout)
        self.timeout = timeout
        self.feeds = 0
        WDTS.append(self)

    def feed(self):
        self.feeds += 1


class ADC:
    def __init__(self, pin):
        _board.check_adc(pin.gpio, True)
        self.pin = pin

    def read_u16(self):
        v = ADC_VALUES.get(self.pin.id, 0)
        if isinstance(v, Exception):
            raise v
        return v


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


def reset():
    raise SystemExit(100)


def idle():
    pass
