"""The phone's wall clock, as the gateway sees it: what TIME_SYNC writes to the boards.

The boards have no clock of their own; every ``sensorReadingTime`` is the gateway's clock at
the last sync plus the board's ticks since.  So the phone's clock is data, and a phone whose
clock jumps (an NTP correction, a user setting the time, a time-zone bug) changes the
timestamps of what follows.  Sources, chosen by the ``clock`` setting:

- ``system``: ``time.time()`` (the default; what a phone app has);
- ``offset-file:PATH``: the system clock plus an offset in milliseconds read from PATH (one
  integer; a missing or empty file means 0).  The file is re-read when it changes, so another
  process can make the clock of a running gateway jump: the fault suite does that.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class ClockError(ValueError):
    """The ``clock`` setting names no clock the gateway has."""


class WallClock(Protocol):
    name: str

    def now_ms(self) -> int:
        """Epoch milliseconds (UTC) by this clock."""
        ...


class SystemClock:
    name = "system"

    def now_ms(self) -> int:
        return int(time.time() * 1000)


class OffsetFileClock:
    """The system clock shifted by the offset (ms) written in a file, re-read when it changes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = f"offset-file:{self.path}"
        self.offset_ms = 0
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read
        self._refresh(first=True)

    def _refresh(self, first: bool = False) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            stamp = None
        else:
            stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._seen:
            return
        self._seen = stamp
        offset = 0
        if stamp is not None:
            try:
                text = self.path.read_text().strip()
                offset = int(text) if text else 0
            except (OSError, ValueError) as exc:
                log.warning("clock offset file %s unreadable (%s): keeping %d ms", self.path, exc, self.offset_ms)
                return
        if first:
            log.info("wall clock: the system clock %+d ms (offset file %s)", offset, self.path)
        elif offset != self.offset_ms:
            log.warning("wall clock jumps by %+d ms (offset file %s)", offset - self.offset_ms, self.path)
        self.offset_ms = offset

    def now_ms(self) -> int:
        self._refresh()
        return int(time.time() * 1000) + self.offset_ms


def open_clock(spec: str) -> WallClock:
    """``system`` or ``offset-file:PATH``."""
    if spec == "system":
        return SystemClock()
    if spec.startswith("offset-file:") and spec.removeprefix("offset-file:"):
        return OffsetFileClock(spec.removeprefix("offset-file:"))
    raise ClockError(f"unknown clock {spec!r}: use system or offset-file:PATH")
