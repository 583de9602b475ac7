"""The person on the step trainer, for CPython (the gateway's simulated phone, tests, fleets).

The model itself lives in ``simulator/shims/stedi_physics.py`` so that the very same file runs
inside a virtual board under MicroPython; this module gives it types and documentation.  Every
function is a pure function of ``(seed, epoch ms)``: derive the seed from the step trainer's
serial number with :func:`seed_for_serial` and the board's distance sensor and the phone's
accelerometer describe the same steps.

Units: distances in millimetres (integers, about 200-300, ``None`` for a lost sample),
acceleration in g (or milli-g as integers), times in milliseconds since the Unix epoch.
"""

from __future__ import annotations

from simulator.shims import stedi_physics as _model

BLOCK_MS: int = _model.BLOCK_MS
SAMPLE_SLOT_MS: int = _model.SAMPLE_SLOT_MS


def seed_for_serial(serial: str) -> int:
    """The person's seed for a step trainer serial number (FNV-1a, 32 bits)."""
    return int(_model.seed_for_serial(serial))


def baseline_mm(seed: int) -> int:
    """Distance with no foot on the step (fixed per trainer)."""
    return int(_model.baseline_mm(seed))


def distance_mm(seed: int, t_ms: int) -> int | None:
    """What the board's distance sensor reads at ``t_ms`` (mm), or ``None`` for a dropout."""
    value: int | None = _model.distance_mm(seed, t_ms)
    return value


def accel_mg(seed: int, t_ms: int) -> tuple[int, int, int]:
    """Phone accelerometer (x, y, z) in milli-g at ``t_ms``; z is vertical (1000 at rest)."""
    x, y, z = _model.accel_mg(seed, t_ms)
    return int(x), int(y), int(z)


def accel_g(seed: int, t_ms: int) -> tuple[float, float, float]:
    """Phone accelerometer (x, y, z) in g at ``t_ms``, like a phone's sensor API reports it."""
    x, y, z = _model.accel_g(seed, t_ms)
    return float(x), float(y), float(z)


def step_at(seed: int, t_ms: int) -> tuple[int, int, int] | None:
    """The step under way at ``t_ms``: (start ms, duration ms, depth mm), or ``None``."""
    step: tuple[int, int, int] | None = _model.step_at(seed, t_ms)
    return step


def steps_between(seed: int, t0_ms: int, t1_ms: int) -> list[int]:
    """Start times (ms) of the steps that begin in ``[t0_ms, t1_ms)``: the ground truth."""
    return list(_model.steps_between(seed, t0_ms, t1_ms))


__all__ = [
    "BLOCK_MS",
    "SAMPLE_SLOT_MS",
    "accel_g",
    "accel_mg",
    "baseline_mm",
    "distance_mm",
    "seed_for_serial",
    "step_at",
    "steps_between",
]
