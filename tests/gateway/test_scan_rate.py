"""The central's scan loop against Android's scan throttling (gateway/scan_rate.py): never more
than SCAN_STARTS scan starts in any 30 s window, whether scans succeed or fail, over minutes of
simulated time.  The loop runs on an event loop whose clock jumps to the next timer instead of
sleeping, with a bleak scanner backend that only counts its starts."""

from __future__ import annotations

import asyncio
import selectors
from pathlib import Path
from typing import Any

import pytest
from bleak.backends.scanner import BaseBleakScanner

from gateway.accel import ReplaySource
from gateway.ble import BleBackend
from gateway.central import Central
from gateway.ingest import Ingest
from gateway.scan_rate import SCAN_STARTS, SCAN_WINDOW_S, ScanStartLimiter
from gateway.spool import Spool

SIMULATED_S = 600.0


class _JumpingSelector:
    """Wraps a selector: when nothing is ready, the loop's clock jumps by the timeout instead of
    waiting it out (nothing in these tests waits for another thread or a socket)."""

    def __init__(self, inner: Any, loop: VirtualTimeLoop) -> None:
        self._inner = inner
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("the loop would wait for ever: nothing is scheduled")
        self._loop.now += timeout
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self._selector = _JumpingSelector(self._selector, self)  # type: ignore[has-type]

    def time(self) -> float:
        return self.now


class CountingScanner(BaseBleakScanner):
    """A bleak scanner backend that finds nothing and records when it was started; ``fail``
    makes a start raise, as an adapter that is busy or switched off does."""

    starts: list[float] = []
    fail: Any = staticmethod(lambda n: False)

    def __init__(self, detection_callback: Any, service_uuids: Any, scanning_mode: str = "active",
                 **kwargs: Any) -> None:
        super().__init__(detection_callback, service_uuids)

    async def start(self) -> None:
        n = len(CountingScanner.starts)
        CountingScanner.starts.append(asyncio.get_running_loop().time())
        if CountingScanner.fail(n):
            raise OSError(16, "Device or resource busy")

    async def stop(self) -> None:
        pass

    def set_scanning_filter(self, **kwargs: Any) -> None:
        pass


def most_starts_in_a_window(starts: list[float], window_s: float = SCAN_WINDOW_S) -> int:
    """The largest number of starts in any half-open window [t, t + window_s)."""
    return max((sum(1 for u in starts if t <= u < t + window_s) for t in starts), default=0)


def run_scan_loop(tmp_path: Path, fail: Any, scan_s: float) -> list[float]:
    CountingScanner.starts = []
    CountingScanner.fail = staticmethod(fail)
    loop = VirtualTimeLoop()
    try:
        spool = Spool(tmp_path / "spool.sqlite3")
        replay = tmp_path / "a.jsonl"
        replay.write_text('{"t": 0, "x": 0, "y": 0, "z": 1}\n')
        backend = BleBackend("counting", scanner_kwargs={"backend": CountingScanner})
        central = Central(Ingest(spool, ReplaySource(replay)), backend, scan_s=scan_s,
                          scan_starts=ScanStartLimiter(clock=loop.time))

        async def main() -> None:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(SIMULATED_S, stop.set)
            await central.run(stop)

        loop.run_until_complete(main())
        assert loop.time() >= SIMULATED_S  # the loop ran through the simulated minutes
        spool.close()
    finally:
        loop.close()
    return CountingScanner.starts


@pytest.mark.parametrize(
    ("case", "fail", "scan_s"),
    [
        ("every scan succeeds", lambda n: False, 3.0),  # the default timing sat at 5 per 30 s
        ("every scan fails", lambda n: True, 3.0),  # the retry path went faster still
        ("short scans, some fail", lambda n: n % 3 == 1, 0.5),
    ],
)
def test_scan_starts_stay_under_androids_limit(tmp_path: Path, case: str, fail: Any, scan_s: float) -> None:
    starts = run_scan_loop(tmp_path, fail, scan_s)
    assert most_starts_in_a_window(starts) <= SCAN_STARTS < 5, (case, starts[:12])
    # ... and the gateway still scans as often as that allows: no starving, no long blind spell
    assert len(starts) >= SIMULATED_S / (SCAN_WINDOW_S / SCAN_STARTS) - 1, (case, len(starts))
    assert max(b - a for a, b in zip(starts, starts[1:], strict=False)) <= SCAN_WINDOW_S / SCAN_STARTS + scan_s


def test_the_limiter_counts_a_sliding_window() -> None:
    now = [0.0]
    limiter = ScanStartLimiter(starts=4, window_s=30.0, clock=lambda: now[0])
    assert limiter.wait_s() == 0.0
    stop = asyncio.Event()
    taken = []
    for t in (0.0, 7.5, 15.0, 22.5):
        now[0] = t
        assert limiter.wait_s() == 0.0
        assert asyncio.run(limiter.acquire(stop))
        taken.append(t)
    now[0] = 29.0  # the fifth start within 30 s of the first: not before 30.0
    assert limiter.wait_s() == pytest.approx(1.0)
    now[0] = 30.0
    assert limiter.wait_s() == 0.0
    stop.set()
    assert not asyncio.run(limiter.acquire(stop)), "a stopped gateway starts no scan"
    with pytest.raises(ValueError, match="starts >= 1"):
        ScanStartLimiter(starts=0)
