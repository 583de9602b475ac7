"""Deploying to a board with mpremote: the .mpy compatibility check, flash, info.

Each step is one ``mpremote connect PORT ...`` subprocess (any port mpremote accepts: a serial
device, ``socket://HOST:PORT`` for a virtual board, ``id:...``).  mpremote's ``fs cp`` compares
sha256 hashes with the board and skips files that are "Up to date", so a re-flash copies only
what changed.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.board import config as board_config
from firmware.build import BuildResult, FirmwareError, check_compatible
from stedi.tools import find_tool

log = logging.getLogger(__name__)

SENSORS = ("hcsr04", "vl53l0x", "sim")
#: A silent device hangs mpremote (no read timeout on sockets): never wait for ever.
MPREMOTE_TIMEOUT_S = 180.0
_MARK = "STEDI-INFO "

_PROBE = "import sys\nprint('STEDI-MPY', getattr(sys.implementation, '_mpy', None), sys.platform)\n"
#: The board a port's sys.platform names (a virtual board's unix port names none).
PLATFORM_BOARD = {"rp2": "picow", "esp32": "esp32"}

_INFO = r"""
import sys, gc, json
gc.collect()
info = {"mpy": getattr(sys.implementation, "_mpy", None), "micropython": ".".join(str(v) for v in sys.implementation.version[:3]),
        "platform": sys.platform, "mem_free": gc.mem_free(), "mem_alloc": gc.mem_alloc()}
try:
    import version
    info["firmware"] = version.FIRMWARE_VERSION
    info["model"] = version.MODEL
except ImportError:
    info["firmware"] = None
try:
    with open("config.json") as f:
        info["config"] = json.load(f)
except (OSError, ValueError) as e:
    info["config"] = None
    info["config_error"] = repr(e)
print("STEDI-INFO " + json.dumps(info))
"""


#: Written before anything is copied, then a hard reset: the firmware boots once without its
#: watchdog, which nothing else stops (firmware/board/config.py, FLASH_PENDING).
_SAFE_BOOT = (
    f"with open({board_config.FLASH_PENDING!r}, 'w') as f:\n"
    "    f.write('stedi firmware flash\\n')\n"
)
_CLEAR_SAFE_BOOT = (
    "import os\n"
    f"try:\n    os.remove({board_config.FLASH_PENDING!r})\nexcept OSError:\n    pass\n"
)
#: After a hard reset a board's USB serial port goes away for a moment (rp2's USB CDC, an
#: ESP32-S3's): keep trying to reach it this long.
RECONNECT_S = 10.0


def mpremote_binary() -> str:
    found = find_tool("mpremote")
    if found is None:
        raise FirmwareError("mpremote not found: pip install mpremote")
    return found


def check_port(port: str) -> None:
    """A port that names a device file must exist: mpremote would only say the device "may be in
    use by another program" (mpremote/transport_serial.py), which sends a person looking for the
    wrong thing."""
    if port.startswith("/") and not os.path.exists(port):
        raise FirmwareError(
            f"there is no device {port}: is the board plugged in (and powered)? `mpremote devs` lists the "
            "serial ports it sees; on Linux a board usually shows up as /dev/ttyUSB0 or /dev/ttyACM0"
        )


def _explain(port: str, output: str, exit_code: int) -> str:
    """mpremote's failure as one message a person can act on, without mpremote's own traceback."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else f"exit {exit_code}"
    if "could not enter raw repl" in output or "SerialException" in output or "TransportError" in output:
        # What mpremote raises when the other end does not speak MicroPython's raw REPL (a web
        # server, a closed connection, another device): its traceback starts mid-path when cut.
        reason = "mpremote could not enter its raw REPL"
        if "could not enter raw repl" not in output:
            reason = f"mpremote: {last.split(': ', 1)[-1]}"
        return (f"no MicroPython board answered on {port} ({reason}): check that the port is the board's (a "
                "virtual board prints its socket:// URL) and that nothing else holds its console")
    if "failed to access" in output:
        if port.startswith("socket://"):
            return (f"nothing answers at {port}: is the virtual board running (`stedi sim board --listen "
                    f"{port[len('socket://'):]}`)?")
        return f"cannot open {port}: {last.removeprefix('mpremote: ')}"
    if "Traceback" in output:
        return f"mpremote failed on {port}: {last}"  # the exception, not mpremote's stack
    return f"mpremote failed on {port} (exit {exit_code}): {' | '.join(lines[-6:])[-800:]}"


def mpremote(port: str, *args: str, timeout: float = MPREMOTE_TIMEOUT_S) -> str:
    """Run ``mpremote connect PORT args...``; stdout, or FirmwareError with mpremote's message."""
    check_port(port)
    argv = [mpremote_binary(), "connect", port, *args]
    log.debug("running %s", " ".join(argv))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FirmwareError(f"mpremote got no answer from {port} within {timeout:.0f} s (is the board there?)") from None
    if proc.returncode != 0:
        raise FirmwareError(_explain(port, proc.stderr + "\n" + proc.stdout, proc.returncode))
    return proc.stdout


def probe(port: str, *then: str) -> tuple[int | None, str]:
    """The board's ``sys.implementation._mpy`` (None if it has none) and ``sys.platform``;
    ``then``: more mpremote commands for the same session."""
    out = mpremote(port, "exec", _PROBE, *then)
    for line in out.splitlines():
        if line.startswith("STEDI-MPY "):
            fields = line.split()
            mpy = None if fields[1] == "None" else int(fields[1])
            return mpy, fields[2] if len(fields) > 2 else ""
    raise FirmwareError(f"unexpected answer from {port} to the .mpy probe: {out.strip()[-300:]!r}")


def board_mpy(port: str) -> int | None:
    """The board's ``sys.implementation._mpy`` (None if it has none)."""
    return probe(port)[0]


def parse_setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (``--config``): VALUE as JSON if it is JSON (5, true, null, "x", {...}), else
    the text itself; KEY may name a pin as ``pins.scl``."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise FirmwareError(f"--config wants KEY=VALUE, e.g. pins.scl=5 or watchdog_ms=8000; got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def make_config(template: dict[str, Any], serial: str, sensor: str | None, rate_hz: int | None,
                buffer_readings: int | None = None, *, board: str | None = None,
                settings: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The board's config.json: the shipped template plus this board's settings (``settings``:
    ``--config KEY=VALUE`` texts), checked as the firmware checks it at boot, so that a pin or
    watchdog value the board's port would refuse is refused here, with the port's rule."""
    try:
        serial = str(uuid.UUID(serial))
    except ValueError:
        raise FirmwareError(f"--serial must be the step trainer's serial number, a UUID; got {serial!r}") from None
    config = dict(template, serial=serial)
    if board is not None:
        if board not in board_config.BOARDS:
            raise FirmwareError(f"--board must be one of {', '.join(board_config.BOARDS)}; got {board!r}")
        config["board"] = board
    if sensor is not None:
        if sensor not in SENSORS:
            raise FirmwareError(f"--sensor must be one of {', '.join(SENSORS)}; got {sensor!r}")
        config["sensor"] = sensor
    if rate_hz is not None:
        if not 1 <= rate_hz <= 50:
            raise FirmwareError(f"--rate must be 1..50 Hz; got {rate_hz}")
        config["rate_hz"] = rate_hz
    if buffer_readings is not None:
        if buffer_readings < 16:
            raise FirmwareError(f"--buffer must hold at least 16 readings; got {buffer_readings}")
        config["buffer_readings"] = buffer_readings
    for text in settings:
        key, value = parse_setting(text)
        top, _, sub = key.partition(".")
        if top not in board_config.DEFAULTS or top == "serial":
            known = ", ".join(k for k in board_config.DEFAULTS if k != "serial")
            raise FirmwareError(f"--config {key}: not a setting of the firmware (settings: {known})")
        if sub:
            if top != "pins":
                raise FirmwareError(f"--config {key}: only pins.NAME has parts (pins.scl, pins.sda, ...)")
            config["pins"] = dict(config.get("pins") or {}, **{sub: value})
        else:
            config[top] = value
    try:
        board_config.merge(dict(config))
    except ValueError as e:
        raise FirmwareError(str(e)) from None
    return config


@dataclass
class FlashReport:
    port: str
    board_mpy: int
    copied: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


def _prepare_script(build: BuildResult) -> str:
    # A leftover X.py on the board would shadow the new X.mpy (MicroPython tries .py first).
    shadowing = sorted(str(p.relative_to(build.out).with_suffix(".py")) for p in build.compiled)
    folders = sorted({str(p.relative_to(build.out).parent) for p in build.files} - {"."})
    return (
        "import os\n"
        f"for d in {folders!r}:\n"
        "    try:\n        os.mkdir(d)\n    except OSError:\n        pass\n"
        f"for f in {shadowing!r}:\n"
        "    try:\n        os.remove(f)\n    except OSError:\n        pass\n"
    )


def _board_path(text: str) -> str:
    """'./app.mpy', '/app.mpy', 'sensors//sim.mpy' -> 'app.mpy', 'sensors/sim.mpy'."""
    parts = [p for p in text.strip().split("/") if p not in ("", ".")]
    return "/".join(parts)


def flash(port: str, build: BuildResult, config: dict[str, Any], *, reset: bool = True) -> FlashReport:
    """Check the board can load the build and is the board the config is for, copy what
    changed, write config.json, reset.

    The running firmware's watchdog cannot be stopped and keeps counting while mpremote copies
    (firmware/board/config.py, FLASH_PENDING): on a slow link it would reset the board halfway.
    So the first, short session (the probe) also writes the flash-pending file and hard-resets
    the board, which then boots without its watchdog; the copy runs in a second session."""
    mpy, platform = probe(port, "+", "exec", _SAFE_BOOT, "+", "reset")
    try:
        check_compatible(mpy, build.mpy)
        assert mpy is not None
        running = PLATFORM_BOARD.get(platform)
        wanted = config.get("board")
        if running and wanted and running != wanted:
            raise FirmwareError(f"the board on {port} is a {running} (sys.platform {platform}), but the config is "
                                f"for a {wanted}: flash with --board {running}")
    except FirmwareError:
        _clear_safe_boot(port)
        raise
    (build.out / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    by_folder: dict[str, list[Path]] = {}
    for path in build.files:
        by_folder.setdefault(str(path.relative_to(build.out).parent), []).append(path)
    args: list[str] = ["exec", _prepare_script(build)]
    for folder, paths in sorted(by_folder.items()):
        dest = ":" if folder == "." else f":{folder}/"
        args += ["+", "fs", "cp", *(str(p) for p in paths), dest]
    # Firmware too old to take the file leaves it: gone before the next boot all the same.
    args += ["+", "exec", _CLEAR_SAFE_BOOT]
    if reset:
        args += ["+", "reset"]
    out = _after_reset(port, *args)
    report = FlashReport(port=port, board_mpy=mpy, config=config)
    up = {_board_path(line.split(":", 1)[1]) for line in out.splitlines() if line.startswith("Up to date:")}
    for path in build.files:
        rel = str(path.relative_to(build.out))
        (report.up_to_date if rel in up else report.copied).append(rel)
    log.info("flashed %s: %d files copied, %d up to date, serial %s, sensor %s, %s Hz%s",
             port, len(report.copied), len(report.up_to_date), config["serial"], config.get("sensor"),
             config.get("rate_hz"), ", board reset" if reset else "")
    return report


def _after_reset(port: str, *args: str) -> str:
    """mpremote just after the board was hard reset: a USB serial port that is gone for a moment
    is waited for (RECONNECT_S); any other failure is final."""
    deadline = time.monotonic() + RECONNECT_S
    while True:
        try:
            return mpremote(port, *args)
        except FirmwareError as e:
            gone = str(e).startswith(("cannot open", "there is no device"))
            if not gone or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def _clear_safe_boot(port: str) -> None:
    """A refused flash leaves the board as it was: without the flash-pending file, and reset so
    that its firmware runs with its watchdog again.  Best effort: the refusal is what counts."""
    try:
        _after_reset(port, "exec", _CLEAR_SAFE_BOOT, "+", "reset")
    except FirmwareError as e:
        log.warning("could not remove %s from the board on %s: %s", board_config.FLASH_PENDING, port, e)


def info(port: str, *, reset: bool = True) -> dict[str, Any]:
    """Firmware version, config and free heap, read over the REPL.  Entering the REPL stops the
    running firmware, so by default the board is reset afterwards (``reset``), which boots it
    into the firmware again: a board someone only looked at keeps advertising."""
    args = ["exec", _INFO]
    if reset:
        args += ["+", "reset"]
    out = mpremote(port, *args)
    for line in out.splitlines():
        if line.startswith(_MARK):
            result: dict[str, Any] = json.loads(line[len(_MARK):])
            return result
    raise FirmwareError(f"unexpected answer from {port}: {out.strip()[-300:]!r}")
