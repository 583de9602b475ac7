"""How often the gateway may start a BLE scan: Android's scan throttling.

Since Android 7.0 the Bluetooth stack keeps, per app, the start times of its last 5 scans
(``NUM_SCAN_DURATIONS_KEPT = 5``) and refuses a new one while the oldest of them started less
than 30 s ago (``EXCESSIVE_SCANNING_PERIOD_MS = 30 * 1000``): AOSP
packages/apps/Bluetooth, ``com.android.bluetooth.gatt.AppScanStats.isScanningTooFrequently``,
checked in ``GattService.registerScanner``, which logs "App '<name>' is scanning too
frequently".  The scan then delivers no results (newer releases report
``SCAN_FAILED_SCANNING_TOO_FREQUENTLY``), so a gateway at the limit goes blind for up to 30 s.

The gateway therefore starts at most ``SCAN_STARTS`` scans in any ``SCAN_WINDOW_S`` sliding
window, one fewer than Android allows: a start the phone counts that we do not see (the same
app scanning elsewhere, a clock tick apart) must not tip it over.  The starts are also spread
out, at least ``SCAN_WINDOW_S / SCAN_STARTS`` (7.5 s) apart, rather than four in a burst and
then 25 s blind: a board that appears, or a customer who consents, waits 7.5 s at most.  Every scan start goes through
the central's ``ScanStartLimiter``: successful scans, failed ones and the retries after them
alike.  Android counts per app; a gateway process runs one central, so one limiter each.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

#: Scan starts allowed in any window of SCAN_WINDOW_S seconds (Android refuses the 6th).
SCAN_STARTS = 4
SCAN_WINDOW_S = 30.0


class ScanStartLimiter:
    """A sliding-window limit on scan starts; ``clock`` is monotonic seconds."""

    def __init__(self, starts: int = SCAN_STARTS, window_s: float = SCAN_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if starts < 1 or window_s <= 0:
            raise ValueError(f"a scan limit needs starts >= 1 and a window > 0, not {starts} in {window_s}s")
        self.starts = starts
        self.window_s = window_s
        self.clock = clock
        self._recent: deque[float] = deque()

    @property
    def spacing_s(self) -> float:
        return self.window_s / self.starts

    def wait_s(self) -> float:
        """Seconds until the next start is allowed (0: now)."""
        now = self.clock()
        while self._recent and now - self._recent[0] >= self.window_s:
            self._recent.popleft()
        if not self._recent:
            return 0.0
        wait = self._recent[-1] + self.spacing_s - now
        if len(self._recent) >= self.starts:  # the window's own rule, whatever the spacing
            wait = max(wait, self._recent[0] + self.window_s - now)
        return max(0.0, wait)

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait for a start to be allowed and count it: True; False if ``stop`` came first."""
        while not stop.is_set():
            wait = self.wait_s()
            if wait <= 0:
                self._recent.append(self.clock())
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
        return False
