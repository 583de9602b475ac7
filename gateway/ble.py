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
