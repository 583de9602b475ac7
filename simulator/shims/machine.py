# mypy: ignore-errors
# MicroPython's `machine` module for a virtual board: the sensors read the person on the step
# trainer (stedi_physics), resets go through the virtual board (_board), and whatever the
# unix port's built-in `umachine` has (idle, mem8/16/32, Signal) is passed through.
#
# Sensors, all driven by stedi_physics.distance_mm(seed, now) with the seed of the board's
# serial number (config.json "serial"/"serialNumber" in the cwd, else env STEDI_SERIAL, else
# the board id), so the gateway's simulated phone sees the same steps:
# - VL53L0X time-of-flight sensor on any I2C bus at address 0x29: the registers a driver
#   uses to identify, start and read a measurement (ST VL53L0X API register map); a
#   measurement takes the default timing budget (about 33 ms) before it is ready.
# - HC-SR04 ultrasonic sensor: an output pin pulsed high then low is its TRIG; ECHO (any input
#   pin, and what time_pulse_us() times) then rises after the burst and stays high for the
#   sound's round trip, or about 38 ms without an echo; a trigger while it is high is ignored.
# - ADC: a LiPo battery behind a 1:2 divider, slowly discharging with uptime.
#
# Pins, I2C, ADC and the watchdog take only what the board profile's port takes
# (_board.profile(): esp32 or picow), raising that port's own errors; see _board.py.
import json
import os
import time

import _board
import stedi_physics
import umachine
from micropython import const

idle = umachine.idle
mem8 = umachine.mem8
mem16 = umachine.mem16
mem32 = umachine.mem32
Signal = getattr(umachine, "Signal", None)

PWRON_RESET = const(1)
HARD_RESET = const(2)
WDT_RESET = const(3)
DEEPSLEEP_RESET = const(4)
SOFT_RESET = const(5)

_ENODEV = const(19)
_EIO = const(5)
_US_PER_MM = 5.831  # round trip of sound: 2 mm / 343 m/s
_NO_ECHO_US = const(38000)  # an HC-SR04 with no echo holds the line high about 38 ms

_freq = 160000000
_start_ms = time.ticks_ms()


def _serial():
    try:
        with open("config.json") as f:
            cfg = json.load(f)
        for key in ("serial", "serialNumber", "serial_number"):
            if cfg.get(key):
                return str(cfg[key])
    except (OSError, ValueError, AttributeError):
        pass
    return os.getenv("STEDI_SERIAL") or _board.board_id() or "virtual-board"


_seed = None


def _person():
    global _seed
    if _seed is None:
        _seed = stedi_physics.seed_for_serial(_serial())
    return _seed


def _now_ms():
    return time.time_ns() // 1000000


def _distance():
    return stedi_physics.distance_mm(_person(), _now_ms())


# ---------------------------------------------------------------- CPU and resets
def freq(hz=None):
    global _freq
    if hz is None:
        return _freq
    _freq = hz


def unique_id():
    h = stedi_physics.seed_for_serial(_board.board_id() or _serial())
    return bytes((0x24, 0x0A, (h >> 24) & 0xFF, (h >> 16) & 0xFF, (h >> 8) & 0xFF, h & 0xFF))


def reset():
    _board.hard_reset()


def soft_reset():
    _board.soft_reset()


def reset_cause():
    return PWRON_RESET


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


def lightsleep(ms=None):
    time.sleep_ms(ms or 0)


def deepsleep(ms=None):
    # Deep sleep ends in a reset on the ports.
    time.sleep_ms(ms or 0)
    _board.hard_reset()


# ---------------------------------------------------------------- Pin
class Pin:
    IN = const(1)
    OUT = const(3)
    OPEN_DRAIN = const(7)
    ALT = const(2)
    PULL_UP = const(1)
    PULL_DOWN = const(2)
    IRQ_RISING = const(1)
    IRQ_FALLING = const(2)

    def __init__(self, id, mode=-1, pull=-1, *, value=None, **kwargs):
        self._id = id
        self._gpio = _board.pin_id(id)
        self._value = 0
        self._mode = -1
        self._handler = None
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, **kwargs):
        if mode != -1:
            _board.check_pin(self._gpio, mode == Pin.OUT or mode == Pin.OPEN_DRAIN)
            self._mode = mode
        if pull != -1:
            self._pull = pull
            if pull == Pin.PULL_UP:
                self._value = 1
        if value is not None:
            self._value = 1 if value else 0

    def value(self, x=None):
        if x is None:
            if self._mode == Pin.IN and _echo[2]:
                return _echo_level(time.ticks_us())  # an input reads the HC-SR04's ECHO
            return self._value
        self._set(1 if x else 0)

    def _set(self, v):
        if self._value and not v and self._mode == Pin.OUT:
            _trigger(time.ticks_us())  # TRIG falls: the HC-SR04 starts a measurement
        self._value = v

    def __call__(self, x=None):
        return self.value(x)

    def on(self):
        self._set(1)

    def off(self):
        self._set(0)

    def toggle(self):
        self._set(self._value ^ 1)

    def irq(self, handler=None, trigger=3, **kwargs):
        # Nothing drives inputs on a virtual board, so the handler is kept but never called.
        self._handler = handler

    def __repr__(self):
        return "Pin(" + repr(self._id) + ")"


# The HC-SR04 sends its 8-cycle 40 kHz burst (200 us, HC-SR04 datasheet) after TRIG falls,
# then raises ECHO.  One sensor per board: [echo rise, echo fall, any trigger yet] in ticks_us.
_BURST_US = const(200)
_echo = [0, 0, False]


def _trigger(now):
    if _echo[2] and time.ticks_diff(_echo[1], now) > 0:
        return  # still busy with the last measurement (ECHO high, or the burst): ignored
    d = _distance()
    us = _NO_ECHO_US if d is None else int(d * _US_PER_MM)
    _echo[0] = time.ticks_add(now, _BURST_US)
    _echo[1] = time.ticks_add(_echo[0], us)
    _echo[2] = True


def _echo_level(t):
    return 1 if _echo[2] and time.ticks_diff(t, _echo[0]) >= 0 and time.ticks_diff(_echo[1], t) > 0 else 0


def _echo_change_after(t):
    """When ECHO next changes after ``t`` (ticks_us), or None."""
    if _echo[2]:
        for edge in (_echo[0], _echo[1]):
            if time.ticks_diff(edge, t) > 0:
                return edge
    return None


def _sleep_until(t):
    wait = time.ticks_diff(t, time.ticks_us())
    if wait > 0:
        time.sleep_us(wait)


def time_pulse_us(pin, pulse_level, timeout_us=1000000):
    """extmod/machine_pulse.c over the HC-SR04's ECHO: wait for the pin to reach pulse_level
    (else -2 after timeout_us), then for it to leave it (else -1 after timeout_us more); the
    pulse's length in us.  A pin already at the level is timed from now: the tail of a pulse."""
    level = 1 if pulse_level else 0
    t0 = time.ticks_us()
    if _echo_level(t0) != level:
        change = _echo_change_after(t0)
        if change is None or time.ticks_diff(change, t0) >= timeout_us:
            _sleep_until(time.ticks_add(t0, timeout_us))
            return -2
        t0 = change
    change = _echo_change_after(t0)
    if change is None or time.ticks_diff(change, t0) >= timeout_us:
        _sleep_until(time.ticks_add(t0, timeout_us))
        return -1
    _sleep_until(change)
    return time.ticks_diff(change, t0)


# ---------------------------------------------------------------- VL53L0X over I2C
_VL53_ADDR = const(0x29)
_SYSRANGE_START = const(0x00)
_SYSTEM_INTERRUPT_CLEAR = const(0x0B)
_RESULT_INTERRUPT_STATUS = const(0x13)
_RESULT_RANGE_STATUS = const(0x14)
_RESULT_RANGE_MM = const(0x1E)  # RESULT_RANGE_STATUS + 10, 16-bit big-endian
_I2C_SLAVE_DEVICE_ADDRESS = const(0x8A)
_OUT_OF_RANGE_MM = const(8190)


# A measurement takes the timing budget: the default is about 33 ms (the figure of
# Pololu-derived drivers, not from ST's source); back-to-back ranging completes one per budget.
_BUDGET_US = const(33000)


class _VL53L0X:
    """Register file of one VL53L0X.  Identification registers hold ST's values; a start
    (single shot 0x01 or back-to-back 0x02 in SYSRANGE_START) takes a measurement from the
    physics, ready one timing budget later (back-to-back: one per budget, each after the
    interrupt was cleared); the start bit reads back clear; reading 0x83 is never 0 (the
    SPAD-info handshake of ST's API waits on it)."""

    def __init__(self):
        self.addr = _VL53_ADDR
        self.regs = bytearray(256)
        self.regs[0xC0] = 0xEE  # IDENTIFICATION_MODEL_ID
        self.regs[0xC1] = 0xAA
        self.regs[0xC2] = 0x10  # revision
        self.regs[0x92] = 0x85  # SPAD info: 5 aperture SPADs
        self.regs[_I2C_SLAVE_DEVICE_ADDRESS] = _VL53_ADDR
        self.pointer = 0
        self.continuous = False
        self.ready_at = None  # ticks_us when the measurement under way completes

    def _measure(self):
        d = _distance()
        if d is None:
            status, mm = 0x04 << 3, _OUT_OF_RANGE_MM  # range status 4: phase fail (no target)
        else:
            status, mm = 0x0B << 3, d  # range status 11: valid
        self.regs[_RESULT_RANGE_STATUS] = status
        self.regs[_RESULT_RANGE_MM] = mm >> 8
        self.regs[_RESULT_RANGE_MM + 1] = mm & 0xFF
        self.regs[_RESULT_INTERRUPT_STATUS] = 0x04  # new sample ready

    def write(self, reg, data):
        for i, b in enumerate(data):
            r = (reg + i) & 0xFF
            if r == _SYSRANGE_START:
                self.continuous = bool(b & 0x02)
                if b & 0x03:
                    self.ready_at = time.ticks_add(time.ticks_us(), _BUDGET_US)
                continue  # the start bit clears itself
            if r == _SYSTEM_INTERRUPT_CLEAR:
                self.regs[_RESULT_INTERRUPT_STATUS] = 0
                continue
            if r == _I2C_SLAVE_DEVICE_ADDRESS:
                self.addr = b & 0x7F
            self.regs[r] = b

    def read(self, reg, n):
        if reg == _RESULT_INTERRUPT_STATUS and not self.regs[reg] and self.ready_at is not None:
            now = time.ticks_us()
            late = time.ticks_diff(now, self.ready_at)
            if late >= 0:
                self._measure()
                # back-to-back: the next one completes at the next budget boundary
                self.ready_at = time.ticks_add(self.ready_at, (late // _BUDGET_US + 1) * _BUDGET_US) \
                    if self.continuous else None
        out = bytearray(n)
        for i in range(n):
            r = (reg + i) & 0xFF
            out[i] = 0x10 if r == 0x83 else self.regs[r]
        return out


_devices = {}


def _bus_devices(bus):
    devs = _devices.get(bus)
    if devs is None:
        devs = [_VL53L0X()]
        _devices[bus] = devs
    return devs


def _gpio(pin):
    if pin is None or isinstance(pin, Pin):
        return None if pin is None else pin._gpio
    return _board.pin_id(pin)


class I2C:
    """I2C bus with a VL53L0X attached at 0x29.  Other addresses do not answer (ENODEV), nor
    does anything on a bus whose pins cannot drive it (an input-only pin on an ESP32)."""

    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        self._bus = id
        works = self._check(id, _gpio(scl), _gpio(sda))
        self._devs = _bus_devices(id) if works else []

    def _check(self, bus, scl, sda):
        return _board.check_i2c(bus, scl, sda)

    def init(self, *args, **kwargs):
        pass

    def _dev(self, addr):
        for d in self._devs:
            if d.addr == addr:
                return d
        raise OSError(_ENODEV)

    def scan(self):
        return [d.addr for d in self._devs]

    def writeto(self, addr, buf, stop=True):
        dev = self._dev(addr)
        if len(buf) == 0:
            return 0
        dev.pointer = buf[0]
        if len(buf) > 1:
            dev.write(buf[0], buf[1:])
        return len(buf)

    def readfrom(self, addr, nbytes, stop=True):
        dev = self._dev(addr)
        data = dev.read(dev.pointer, nbytes)
        dev.pointer = (dev.pointer + nbytes) & 0xFF
        return bytes(data)

    def readfrom_into(self, addr, buf, stop=True):
        buf[:] = self.readfrom(addr, len(buf))

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._dev(addr).write(memaddr, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        return bytes(self._dev(addr).read(memaddr, nbytes))

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        buf[:] = self._dev(addr).read(memaddr, len(buf))


class SoftI2C(I2C):
    """Bit-banged I2C on any pins that exist (extmod/machine_i2c.c): no controller's pin rules.
    It reaches the same VL53L0X as hardware bus 0."""

    def __init__(self, scl, sda, *, freq=400000, timeout=50000):
        super().__init__(0, scl=scl, sda=sda, freq=freq, timeout=timeout)

    def _check(self, bus, scl, sda):
        return True


# ---------------------------------------------------------------- ADC (battery)
class ADC:
    """A LiPo battery behind a 1:2 divider: 4.15 V at power-up, about 0.1 V less per hour of
    uptime, never below 3.3 V.  Reference 3.3 V."""

    ATTN_0DB = const(0)
    ATTN_11DB = const(3)
    WIDTH_12BIT = const(3)

    def __init__(self, pin, *, atten=None):
        if isinstance(pin, Pin):
            _board.check_adc(pin._gpio, True)
        else:
            _board.check_adc(_board.pin_id(pin) if _board.profile() == "esp32" else pin, False)
        self._pin = pin

    def atten(self, a):
        pass

    def width(self, w):
        pass

    def read_uv(self):
        hours_x1000 = time.ticks_diff(time.ticks_ms(), _start_ms) // 3600
        battery_mv = max(3300, 4150 - hours_x1000 * 100 // 1000)
        return battery_mv * 1000 // 2

    def read_u16(self):
        return min(65535, self.read_uv() * 65535 // 3300000)

    def read(self):
        return self.read_u16() >> 4


# ---------------------------------------------------------------- watchdog
class WDT:
    """A watchdog: not fed within ``timeout`` ms, the board is hard reset.

    On a virtual board the watchdog is the board's (_board.watchdog): like the hardware one it
    keeps counting after Ctrl-C, in the REPL and through soft resets (machine.WDT docs: "Once it
    is running the timeout cannot be changed and the WDT cannot be stopped either"; nothing in
    ports/rp2/main.c or ports/esp32/main.c stops it on a soft reset), until a hard reset.  A
    second WDT(...) sets the new timeout on both ports (rp2 calls watchdog_enable again,
    esp32 esp_task_wdt_reconfigure).  Outside a board, a thread here exits the interpreter with
    _board.EXIT_HARD_RESET."""

    def __init__(self, id=0, timeout=5000):
        _board.check_wdt(id, timeout)
        self._timeout = timeout
        self._fed = time.ticks_ms()
        if not _board.watchdog(timeout):
            import _thread

            _thread.start_new_thread(self._watch, ())

    def feed(self):
        self._fed = time.ticks_ms()
        _board.watchdog_feed()

    def _watch(self):
        while time.ticks_diff(time.ticks_ms(), self._fed) < self._timeout:
            time.sleep_ms(50)
        print("WDT: not fed for", self._timeout, "ms; resetting")
        _board.hard_reset()
