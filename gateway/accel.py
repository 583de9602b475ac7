"""The phone's accelerometer, behind one small interface.

For each step-trainer reading the gateway asks its source for the sample at that
reading's time (``sensorReadingTime``), nearest or linearly interpolated from the
source's stream, and writes it as an accelerometer record with that exact timestamp,
so the two join exactly.  Sources, chosen by ``--accel``:

- ``plyer``: the phone's sensor through plyer (imported only when chosen);
- ``sim``: the simulator's physics model, seeded per board with ``seed_for_serial``;
- ``replay:FILE``: JSON lines ``{"t": ms, "x": g, "y": g, "z": g}`` (or ``[t, x, y, z]``).
  Times of at least 10^12 are epoch ms; smaller ones are ms from the file's start and the
  recording loops from the first reading it is asked about.
"""

from __future__ import annotations

import bisect
import importlib
import json
import logging
import math
import threading
import time
from collections import deque
from pathlib import Path
from typing import Literal, Protocol

log = logging.getLogger(__name__)

Sample = tuple[float, float, float]
Mode = Literal["nearest", "interpolate"]

STANDARD_GRAVITY = 9.80665  # m/s^2 per g; the contract's accelerometer unit is g
_EPOCH_MS_FLOOR = 10**12
#: The simulated phone (``--accel sim``), a part of the simulator.
SIM_PHONE_MODULE = "simulator.phone"


class AccelError(Exception):
    """An accelerometer source cannot be opened or read."""


class AccelSource(Protocol):
    name: str

    def sample(self, serial: str, t_ms: int) -> Sample:
        """The phone's acceleration (g) at ``t_ms`` for the customer using board ``serial``."""
        ...

    def close(self) -> None: ...


def _pick(times: list[int], values: list[Sample], t: float, mode: Mode) -> Sample:
    """Nearest or interpolated value of a sorted series at ``t`` (clamped at the ends)."""
    i = bisect.bisect_left(times, t)
    if i <= 0:
        return values[0]
    if i >= len(times):
        return values[-1]
    t0, t1 = times[i - 1], times[i]
    v0, v1 = values[i - 1], values[i]
    if mode == "nearest" or t1 == t0:
        return v0 if t - t0 <= t1 - t else v1
    f = (t - t0) / (t1 - t0)
    return (v0[0] + (v1[0] - v0[0]) * f, v0[1] + (v1[1] - v0[1]) * f, v0[2] + (v1[2] - v0[2]) * f)


class ReplaySource:
    """A recorded phone stream from a file."""

    name = "replay"

    def __init__(self, path: str | Path, mode: Mode = "interpolate"):
        self.path = Path(path)
        self.mode: Mode = mode
        self.times: list[int] = []
        self.values: list[Sample] = []
        try:
            lines = self.path.read_text().splitlines()
        except OSError as exc:
            raise AccelError(f"cannot read accelerometer replay {self.path}: {exc}") from exc
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                t, x, y, z = (item["t"], item["x"], item["y"], item["z"]) if isinstance(item, dict) else item
                sample = (float(x), float(y), float(z))
                if not all(math.isfinite(v) for v in sample):
                    raise ValueError("not finite")
                self.times.append(int(t))
                self.values.append(sample)
            except (ValueError, TypeError, KeyError) as exc:
                raise AccelError(f"{self.path}:{n}: not a sample {{t, x, y, z}}: {line[:80]!r} ({exc})") from exc
        if not self.times:
            raise AccelError(f"accelerometer replay {self.path} holds no samples")
        order = sorted(range(len(self.times)), key=self.times.__getitem__)
        self.times = [self.times[i] for i in order]
        self.values = [self.values[i] for i in order]
        self.relative = self.times[-1] < _EPOCH_MS_FLOOR
        # The recording repeats after its last sample plus one sampling interval.
        step = self.times[-1] - self.times[-2] if len(self.times) > 1 else 1
        self.period = max(1, self.times[-1] + step) if self.relative else 0
        self._anchor: dict[str, int] = {}

    def sample(self, serial: str, t_ms: int) -> Sample:
        t: float = t_ms
        if self.relative:
            anchor = self._anchor.setdefault(serial, t_ms)
            t = (t_ms - anchor) % self.period
        return _pick(self.times, self.values, t, self.mode)

    def close(self) -> None:
        pass


class PlyerSource:
    """The phone's own accelerometer through plyer, polled into a short timed history."""

    name = "plyer"

    def __init__(self, mode: Mode = "interpolate", rate_hz: float = 50.0, history_s: float = 30.0):
        try:
            from plyer import accelerometer  # a phone-only dependency: import it only when chosen
        except ImportError as exc:
            raise AccelError("the plyer accelerometer needs plyer: pip install 'stedi[phone]'") from exc
        try:
            accelerometer.enable()
            accelerometer.acceleration  # noqa: B018 - a first read shows whether there is a sensor
        except Exception as exc:  # noqa: BLE001 - plyer raises anything from NotImplementedError to Exception
            raise AccelError(
                f"plyer has no accelerometer on this platform ({type(exc).__name__}: {exc}); "
                "use --accel sim or --accel replay:FILE"
            ) from exc
        self._sensor = accelerometer
        self.mode: Mode = mode
        self._history: deque[tuple[int, Sample]] = deque(maxlen=int(rate_hz * history_s))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._period = 1.0 / rate_hz
        self._thread = threading.Thread(target=self._poll, name="plyer-accel", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self._period):
            try:
                value = self._sensor.acceleration
            except Exception:  # noqa: BLE001 - a missed sample is filled by its neighbours
                log.debug("accelerometer read failed", exc_info=True)
                continue
            if value is None or any(v is None for v in value):
                continue
            sample = (value[0] / STANDARD_GRAVITY, value[1] / STANDARD_GRAVITY, value[2] / STANDARD_GRAVITY)
            with self._lock:
                self._history.append((int(time.time() * 1000), sample))

    def sample(self, serial: str, t_ms: int) -> Sample:
        with self._lock:
            history = list(self._history)
        if not history:
            raise AccelError("the phone's accelerometer has not reported a sample yet")
        return _pick([h[0] for h in history], [h[1] for h in history], t_ms, self.mode)

    def close(self) -> None:
        self._stop.set()
        try:
            self._sensor.disable()
        except Exception:  # noqa: BLE001 - closing a phone sensor must not stop the shutdown
            log.debug("plyer accelerometer disable failed", exc_info=True)


def open_source(spec: str, mode: Mode = "interpolate") -> AccelSource:
    """``plyer``, ``sim`` or ``replay:FILE``."""
    if spec == "plyer":
        return PlyerSource(mode)
    if spec == "sim":
        # Loaded by name, like the simulator's bleak backend: the simulator is not on phones.
        try:
            phone = importlib.import_module(SIM_PHONE_MODULE)
        except ImportError as exc:
            raise AccelError(f"--accel sim: the simulator is not installed ({exc})") from exc
        source: AccelSource = phone.SimSource(mode)
        return source
    if spec.startswith("replay:"):
        return ReplaySource(spec.removeprefix("replay:"), mode)
    raise AccelError(f"unknown accelerometer source {spec!r}: use plyer, sim or replay:FILE")
