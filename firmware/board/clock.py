# Board clock: ticks_ms masked to 30 bits (what the ring buffer stores) and the
# epoch offset the gateway sets with TIME_SYNC.  Readings keep their ticks; they
# are converted to epoch ms at send time, so readings taken before the first
# sync are stamped correctly once it arrives (same boot).

import time

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


# 2^30: ESP32 and rp2 ticks_ms wrap at this period; the unix port's larger period
# is a multiple of it, so masking keeps differences exact on every port.
TICKS_MASK = const(0x3FFFFFFF)
_HALF = const(0x20000000)


def now_ticks():
    return time.ticks_ms() & TICKS_MASK


def ticks_delta(a, b):
    """a - b in ms for two masked tick values less than 2^29 ms (6.2 days) apart."""
    return ((a - b + _HALF) & TICKS_MASK) - _HALF


class Clock:
    def __init__(self):
        self.synced = False
        self.sync_epoch = 0
        self.sync_ticks = 0
        self.syncs = 0

    def sync(self, epoch_ms, ticks=None):
        self.sync_ticks = now_ticks() if ticks is None else ticks
        self.sync_epoch = epoch_ms
        self.synced = True
        self.syncs += 1

    def to_epoch(self, ticks):
        """Epoch ms of a masked tick value (the clock must be synced)."""
        return self.sync_epoch + ticks_delta(ticks, self.sync_ticks)

    def now_epoch(self):
        return self.to_epoch(now_ticks()) if self.synced else None
