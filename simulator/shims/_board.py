# mypy: ignore-errors
"""How shim modules talk to the virtual board that runs this interpreter (MicroPython code).

The virtual board (``simulator/board/server.py``) runs the flashed program in a MicroPython
unix-port process.  A reset cannot be done from inside that process, so a shim asks the board:

- ``hard_reset()``: like the reset button (``machine.reset()``).  The board kills this
  interpreter and powers up a fresh one: ``boot.py`` then ``main.py``, friendly REPL.
  Never returns.
- ``soft_reset()``: like Ctrl-D (``machine.soft_reset()``).  Fresh interpreter, the board
  prints ``MPY: soft reboot``, runs ``boot.py`` and, in friendly REPL mode, ``main.py``.
  Never returns.
- ``on_board()``: True when running under a virtual board (False under plain ``micropython``,
  e.g. a unit test running a shim directly).
- ``board_id()``: the board's name (env ``STEDI_BOARD_ID``, set by the board; "" if unset).
- ``watchdog(timeout_ms)`` / ``watchdog_feed()``: start (or, as both ports do for a second
  ``machine.WDT(...)``, reconfigure) the board's watchdog, and feed it.  The watchdog belongs to
  the board, not to this interpreter: it keeps counting through Ctrl-C, the REPL and soft
  resets, as the real ones do, and only a hard reset stops it.  Returns False outside a board.
- ``profile()``: the port this board behaves as (env ``STEDI_BOARD_PROFILE``: ``esp32``, the
  default, or ``picow``), and the rules that port applies to pins, I2C, ADC and the watchdog
  (``check_pin``, ``check_i2c``, ``check_adc``, ``check_wdt``), raising the port's own errors.

Mechanism: the board passes a random token in env ``STEDI_BOARD_NONCE``; a request is the
control marker ``\\x00STEDI-<token>:`` plus one code byte (``H`` hard, ``S`` soft; ``W`` and 8
ASCII digits: watchdog started with that timeout in ms; ``D``: watchdog fed) written to stdout, which the board reads and strips before anything reaches the host.  The caller then
sleeps until the board kills the process.  Outside a board, the request raises ``SystemExit``
with code 100 (hard) or 101 (soft) so a plain interpreter stops with a recognisable status.
"""

import os
import sys
import time

EXIT_HARD_RESET = 100
EXIT_SOFT_RESET = 101


def _nonce():
    return os.getenv("STEDI_BOARD_NONCE") or ""


def on_board():
    return bool(_nonce())


def board_id():
    return os.getenv("STEDI_BOARD_ID") or ""


def marker(code):
    """The control marker for ``code`` (one byte), as the board expects it."""
    return b"\x00STEDI-" + _nonce().encode() + b":" + code


def _request(code, exit_status):
    if not on_board():
        raise SystemExit(exit_status)
    sys.stdout.buffer.write(marker(code))
    # Wait for the board to kill this process; a late Ctrl-C must not let the program go on.
    while True:
        try:
            time.sleep(1)
        except KeyboardInterrupt:
            pass


def hard_reset():
    _request(b"H", EXIT_HARD_RESET)


def soft_reset():
    _request(b"S", EXIT_SOFT_RESET)


def watchdog(timeout_ms):
    """Ask the board to start its watchdog (or set a new timeout): False outside a board."""
    if not on_board():
        return False
    sys.stdout.buffer.write(marker(b"W") + b"%08d" % timeout_ms)
    return True


def watchdog_feed():
    if on_board():
        sys.stdout.buffer.write(marker(b"D"))


# ---------------------------------------------------------------- board profiles
# What the port a virtual board stands for refuses, with the port's own error texts (read in
# micropython/micropython at 1c3c201; each rule names its file).  The firmware's config check
# (firmware/board/config.py) has its own copy of these rules on purpose: this is the referee
# that a wrong rule there runs into, as it would on the real board.
#   esp32: ESP32-WROOM, MicroPython's esp32 port, NimBLE.
#   picow: Raspberry Pi Pico W (RP2040 + CYW43439), the rp2 port, BTstack.
PROFILES = ("esp32", "picow")


def profile():
    name = os.getenv("STEDI_BOARD_PROFILE") or "esp32"
    if name not in PROFILES:
        raise ValueError("STEDI_BOARD_PROFILE must be esp32 or picow, not " + repr(name))
    return name


def _esp32_gpio(n):
    # docs/esp32/quickref.rst: "Available Pins are from the following ranges (inclusive):
    # 0-19, 21-23, 25-27, 32-39" (the others are absent from ports/esp32/machine_pin.c's table).
    return 0 <= n <= 19 or 21 <= n <= 23 or 25 <= n <= 27 or 32 <= n <= 39


def pin_id(pin):
    """The GPIO number of ``pin`` (an int or a name) on this board, or the port's ValueError.
    A Pico W's CYW43 pins ("LED", "WL_GPIO0".."WL_GPIO2") stay names."""
    if profile() == "esp32":
        # ports/esp32/machine_pin.c, machine_pin_find: no named pins on a generic ESP32.
        if isinstance(pin, int) and _esp32_gpio(pin):
            return pin
        raise ValueError("invalid pin")
    # ports/rp2/machine_pin.c, machine_pin_find: GPIO 0-29 by number; names from the board's
    # pins.csv (ports/rp2/boards/RPI_PICO_W/pins.csv: GP0-GP22, GP26-GP28, WL_GPIO0-2, LED)
    # or the CPU's (GPIO0-GPIO29).
    if isinstance(pin, int):
        if 0 <= pin <= 29:
            return pin
        raise ValueError("invalid pin")
    if pin in ("LED", "WL_GPIO0", "WL_GPIO1", "WL_GPIO2"):
        return pin
    for prefix, last in (("GPIO", 29), ("GP", 28)):
        if pin.startswith(prefix) and pin[len(prefix):].isdigit():
            n = int(pin[len(prefix):])
            if n <= last and not (prefix == "GP" and 23 <= n <= 25):
                return n
    raise ValueError(f'unknown named pin "{pin}"')


def check_pin(n, output):
    """A pin set up as an output: the ESP32's GPIO 34-39 are input only
    (ports/esp32/machine_pin.c, GPIO_FIRST_NON_OUTPUT)."""
    if output and profile() == "esp32" and isinstance(n, int) and n >= 34:
        raise ValueError("pin can only be input")


def check_i2c(bus, scl, sda):
    """Hardware I2C ``bus`` on GPIOs ``scl``/``sda`` (None: the port's default pins).  Raises what
    the port raises; returns False when the port accepts pins that cannot work (the ESP32 takes
    an input-only pin and its bus then never gets an ACK)."""
    if bus not in (0, 1):
        # ports/rp2/machine_i2c.c and ports/esp32/machine_i2c.c (two controllers each).
        raise ValueError(f"I2C({bus}) doesn't exist")
    if profile() == "esp32":
        # docs/esp32/quickref.rst: "Any available output-capable pins can be used for SCL and SDA".
        return not ((scl is not None and scl >= 34) or (sda is not None and sda >= 34))
    # ports/rp2/machine_i2c.h, IS_VALID_SCL/IS_VALID_SDA: SCL odd, SDA even, and bit 1 of the
    # GPIO number is the bus (I2C0: SCL 1, 5, 9, ..., SDA 0, 4, 8, ...; I2C1: SCL 3, 7, ...,
    # SDA 2, 6, ...); checked in machine_i2c.c's make_new, SCL first.
    if scl is not None and not (isinstance(scl, int) and scl & 1 == 1 and (scl & 2) >> 1 == bus):
        raise ValueError("bad SCL pin")
    if sda is not None and not (isinstance(sda, int) and sda & 1 == 0 and (sda & 2) >> 1 == bus):
        raise ValueError("bad SDA pin")
    return True


def check_adc(source, is_pin):
    """ADC on ``source``: a GPIO number (``is_pin``: given as a Pin), or a bare int, which on
    rp2 is a channel when it is 0-4."""
    if profile() == "esp32":
        # docs/esp32/quickref.rst: ADC on 32-39 (block 1) and 0, 2, 4, 12-15, 25-27 (block 2);
        # ports/esp32/machine_adc.c raises "invalid pin" for the others.
        if 32 <= source <= 39 or source in (0, 2, 4, 12, 13, 14, 15, 25, 26, 27):
            return
        raise ValueError("invalid pin")
    # ports/rp2/machine_adc.c: an int 0-4 is a channel (4 the temperature sensor); a pin must be
    # GPIO 26-29 (ADC_IS_VALID_GPIO).
    if isinstance(source, int) and (26 <= source <= 29 or (not is_pin and 0 <= source <= 4)):
        return
    raise ValueError("Pin doesn't have ADC capabilities")


def check_wdt(wdt_id, timeout_ms):
    if profile() == "esp32":
        # ports/esp32/machine_wdt.c: id 0 only; no upper limit.
        if wdt_id != 0:
            raise ValueError()
        if timeout_ms <= 0:
            raise ValueError("WDT timeout too short")
        return
    # ports/rp2/machine_wdt.c: the 24-bit counter ticks twice per us on the RP2040, so at most
    # 8388 ms (WDT_TIMEOUT_MAX); the timeout is taken as unsigned, so a negative one exceeds it.
    if wdt_id != 0:
        raise ValueError(f"WDT({wdt_id}) doesn't exist")
    if timeout_ms < 0 or timeout_ms > 8388:
        raise ValueError("timeout exceeds 8388")


# ---------------------------------------------------------------- BTstack's attribute table
# On a Pico W the GATT table lives in one static buffer of MAX_ATT_DB_SIZE = 512 bytes
# (extmod/btstack/btstack_config_common.h: "We don't give btstack a malloc, so use a fixed-size
# ATT DB").  BTstack's att_db_util.c (bluekitchen/btstack src/ble/att_db_util.c, read at 03cfe11;
# MicroPython pins lib/btstack at 77e752a) stores each attribute as size(2) flags(2) handle(2)
# uuid(2 or 16) value, after a version byte and before a 2-byte end tag.  An attribute that does
# not fit is skipped with only a log line ("att_db: out of memory", att_db_util_assert_space),
# and MicroPython returns the handle it would have had (modbluetooth_btstack.c's "TODO: btstack's
# att_db_util_add_* methods have no bounds checking"): gatts_register_services succeeds and the
# characteristic simply is not there for a central to find.  ESP32's NimBLE sizes its table
# from the definitions at registration and has no such limit.
ATT_DB_SIZE = 512


class BtstackAttDb:
    """The byte budget of BTstack's ATT database, attribute by attribute, as att_db_util fills it.
    Each ``add_*`` returns ``(handle, stored)``: the handle BTstack hands back, and whether the
    attribute is really in the table."""

    def __init__(self):
        self.used = 1  # the version byte (att_db_util_init)
        self.next_handle = 1
        self.dropped = 0
        # mp_bluetooth_gatts_register_service_begin: GAP (0x1800) with Device Name, then GATT
        # (0x1801) with Service Changed, before any service of the program's.
        self.add_service(2)
        self.add_characteristic(2, False)
        self.add_service(2)
        self.add_characteristic(2, False)

    def _add(self, uuid_len, value_len):
        handle = self.next_handle
        size = 6 + uuid_len + value_len
        if self.used + size + 2 > ATT_DB_SIZE:  # att_db_util_assert_space: room for the end tag too
            self.dropped += 1
            return handle, False
        self.used += size
        self.next_handle += 1
        return handle, True

    def add_service(self, uuid_len):
        # a «Primary Service» declaration (uuid16 0x2800) whose value is the service's UUID
        return self._add(2, uuid_len)

    def add_characteristic(self, uuid_len, cccd):
        """Declaration (properties, value handle, UUID), value (empty: MicroPython keeps values
        in its own gatts_db), and a CCCD when it notifies or indicates.  Returns the value's
        ``(handle, stored)`` and whether the declaration and the CCCD were stored."""
        _, declared = self._add(2, 3 + uuid_len)
        value = self._add(uuid_len, 0)
        cccd_stored = self._add(2, 2)[1] if cccd else False
        return value, declared, cccd_stored

    def add_descriptor(self, uuid_len):
        return self._add(uuid_len, 0)

    def size(self):
        return self.used + 2  # att_db_util_get_size: with the end tag
