"""Connecting to one board: bleak-retry-connector where it can be imported, else bleak's own
``connect()`` with a bounded retry of our own.

bleak-retry-connector decides it runs on Linux from ``platform.system()``, which python-for-
android also reports, and then imports ``dbus_fast`` and ``bluetooth_adapters`` at import time
(both BlueZ-only: there is no D-Bus on a phone).  So on Android importing it fails, and the
gateway connects with bleak alone.  What is importable decides, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

#: Pause before the second, third, ... attempt of the fallback (seconds), as a short backoff.
RETRY_PAUSE_S = (0.25, 1.0)

Connector = Callable[..., Awaitable[Any]]


@functools.cache
def retry_connector() -> Connector | None:
    """bleak-retry-connector's ``establish_connection``, or None where it cannot be imported."""
    try:
        from bleak_retry_connector import establish_connection
    except ImportError as exc:
        log.info("bleak-retry-connector is not usable here (%s): connecting with bleak's connect() and "
                 "a bounded retry", exc)
        return None
    return establish_connection  # type: ignore[no-any-return]


async def establish(client_class: type[Any], device: Any, name: str, *,
                    disconnected_callback: Callable[[Any], None], max_attempts: int = 3,
                    **client_kwargs: Any) -> Any:
    """A connected client for ``device`` (a BLEDevice: bleak then connects without scanning
    for it first, which on Android would be one more scan start), or the last error after
    ``max_attempts`` attempts."""
    connector = retry_connector()
    if connector is not None:
        return await connector(client_class, device, name, disconnected_callback=disconnected_callback,
                               max_attempts=max_attempts, **client_kwargs)
    return await connect_with_retry(client_class, device, name, disconnected_callback=disconnected_callback,
                                    max_attempts=max_attempts, **client_kwargs)


async def connect_with_retry(client_class: type[Any], device: Any, name: str, *,
                             disconnected_callback: Callable[[Any], None], max_attempts: int = 3,
                             **client_kwargs: Any) -> Any:
    """bleak's ``connect()``, tried up to ``max_attempts`` times with short pauses."""
    attempts = max(1, max_attempts)
    for attempt in range(1, attempts + 1):
        client = client_class(device, disconnected_callback=disconnected_callback, **client_kwargs)
        try:
            await client.connect()
            return client
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await client.disconnect()
            raise
        except Exception as exc:  # noqa: BLE001 - bleak's errors differ per backend; the last one is raised
            with contextlib.suppress(Exception):
                await client.disconnect()
            if attempt == attempts:
                raise
            pause = RETRY_PAUSE_S[min(attempt - 1, len(RETRY_PAUSE_S) - 1)]
            log.info("%s: connect attempt %d of %d failed (%s: %s); again in %.2fs", name, attempt, attempts,
                     type(exc).__name__, exc, pause)
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")  # the loop returns or raises
