"""A bleak backend for the virtual radio, so the gateway uses bleak's public API unchanged.

Imports bleak and the radio's protocol; the gateway loads it by name (``gateway/ble.py``).

    from bleak import BleakClient, BleakScanner
    from simulator.bleak_backend import backend_kwargs

    kw = backend_kwargs("sim://127.0.0.1:9000")
    device = await BleakScanner.find_device_by_name("STEDI-1234", **kw)
    async with BleakClient(device, **kw) as client: ...

``backend_kwargs`` gives one dict for both ``BleakScanner`` and ``BleakClient``: its ``backend``
is :class:`SimBackend`, which builds a :class:`SimScanner` or a :class:`SimClient` depending on
which of the two calls it.
"""

from __future__ import annotations

from typing import Any

from simulator.bleak_backend.client import SimClient
from simulator.bleak_backend.scanner import SimScanner
from simulator.radio.protocol import parse_hostport

SCHEME = "sim://"


class SimBackend:
    """The class passed as bleak's ``backend=``: bleak's client passes ``disconnected_callback``,
    its scanner does not, so that tells which backend to build."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        if "disconnected_callback" in kwargs:
            return SimClient(*args, **kwargs)
        return SimScanner(*args, **kwargs)


def is_sim_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(SCHEME)


def backend_kwargs(url: str) -> dict[str, Any]:
    """Keyword arguments for ``BleakScanner(...)``, ``BleakScanner.find_device_by_*(...)`` and
    ``BleakClient(...)`` that select the virtual radio at ``url`` (``sim://HOST:PORT``)."""
    if not is_sim_url(url):
        raise ValueError(f"not a virtual radio URL (sim://HOST:PORT): {url!r}")
    host, port = parse_hostport(url)
    return {"backend": SimBackend, "radio": f"{SCHEME}{host}:{port}"}


__all__ = ["SCHEME", "SimBackend", "SimClient", "SimScanner", "backend_kwargs", "is_sim_url"]
