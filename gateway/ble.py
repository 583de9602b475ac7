"""Which bleak backends the central uses, chosen by configuration (``--ble``).

- ``bleak``: bleak's own backend for this platform (BlueZ, CoreBluetooth, WinRT, Android);
- ``sim://HOST:PORT``: the simulator's virtual radio, through the simulator's bleak backend.

The central code is the same for both: only the backend classes handed to
``BleakScanner``/``BleakClient`` differ.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


class BleConfigError(ValueError):
    """``--ble`` names no usable backend."""


@dataclass(frozen=True)
class BleBackend:
    spec: str
    #: Extra keyword arguments for BleakScanner and BleakClient (``backend=...`` and friends).
    scanner_kwargs: dict[str, Any] = field(default_factory=dict)
    client_kwargs: dict[str, Any] = field(default_factory=dict)


def resolve(spec: str) -> BleBackend:
    if spec == "bleak":
        return BleBackend(spec)
    if spec.startswith("sim://"):
        try:
            module = importlib.import_module("simulator.bleak_backend")
        except ImportError as exc:
            raise BleConfigError(f"--ble {spec}: the simulator's bleak backend is not installed ({exc})") from exc
        kwargs = dict(module.backend_kwargs(spec))  # the same keywords serve scanner and client
        return BleBackend(spec, kwargs, dict(kwargs))
    raise BleConfigError(f"--ble must be 'bleak' or 'sim://HOST:PORT', not {spec!r}")


#: Where bleak's BlueZ backend looks for the D-Bus system bus (dbus_fast/_private/address.py:
#: DBUS_SYSTEM_BUS_ADDRESS, else the D-Bus specification's well-known system bus socket).
DEFAULT_SYSTEM_BUS = "unix:path=/var/run/dbus/system_bus_socket"


def check_available(spec: str) -> None:
    """Refuse ``--ble bleak`` on Linux when there is no D-Bus system bus to reach BlueZ through:
    without it every scan fails with a bare "[Errno 2] No such file or directory", for ever."""
    import os
    import sys

    if spec != "bleak" or not sys.platform.startswith("linux"):
        return
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS
    paths = [part[len("unix:path="):].split(",")[0] for part in address.split(";") if part.startswith("unix:path=")]
    if paths and not any(os.path.exists(p) for p in paths):
        raise BleConfigError(
            f"--ble bleak needs BlueZ, reached through the D-Bus system bus, and there is none here "
            f"({' or '.join(paths)} does not exist). On a machine with a Bluetooth adapter start them "
            "(`sudo systemctl start dbus bluetooth`); in a container, mount the host's /var/run/dbus; "
            "without hardware use the simulator's radio (`--ble sim://127.0.0.1:9000`, docs/simulator.md)"
        )


def explain_scan_error(exc: BaseException) -> str:
    """A failed scan in words a person can act on (bleak's own errors name a socket or a D-Bus
    error, not the missing part)."""
    text = str(exc)
    if isinstance(exc, FileNotFoundError) or "system_bus_socket" in text:
        return (f"no D-Bus system bus, so no BlueZ ({text}): start dbus and bluetooth, or use "
                "--ble sim://HOST:PORT without hardware")
    if "ServiceUnknown" in text or ("org.bluez" in text and "not" in text.lower()):
        return f"BlueZ is not running ({text}): start it (`sudo systemctl start bluetooth`)"
    if "No Bluetooth adapters found" in text or ("adapter" in text.lower() and "not found" in text.lower()):
        return f"no Bluetooth adapter ({text}): plug one in or power it on (`bluetoothctl power on`)"
    return text
