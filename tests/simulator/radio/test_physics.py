"""The physics model: deterministic, the same under MicroPython and CPython, plausible."""

from __future__ import annotations

import json

from simulator import physics
from tests.parts import MicroPython
from tests.simulator.radio.conftest import SHIMS

T0 = 1_790_000_000_000  # an epoch ms in 2026
SERIALS = ["7f3b2a10-0000-4000-8000-000000000001", "b1c0ffee-1234-4abc-9def-0123456789ab", ""]
TIMES = [T0 + i * 37 for i in range(400)] + [T0 + 10**9 + i * 1013 for i in range(100)]


def _cpython_values() -> dict[str, list[object]]:
    out: dict[str, list[object]] = {}
    for serial in SERIALS:
        seed = physics.seed_for_serial(serial)
        out[serial] = [
            seed,
            [physics.distance_mm(seed, t) for t in TIMES],
            [list(physics.accel_g(seed, t)) for t in TIMES],
            [list(s) if s else None for s in (physics.step_at(seed, t) for t in TIMES)],
            physics.steps_between(seed, T0, T0 + 60_000),
        ]
    return out


def test_same_values_under_micropython_and_cpython(micropython: MicroPython) -> None:
    code = f"""
import json, stedi_physics as p
out = {{}}
TIMES = {TIMES!r}
for serial in {SERIALS!r}:
    seed = p.seed_for_serial(serial)
    out[serial] = [seed, [p.distance_mm(seed, t) for t in TIMES],
                   [list(p.accel_g(seed, t)) for t in TIMES],
                   [list(s) if s else None for s in [p.step_at(seed, t) for t in TIMES]],
                   p.steps_between(seed, {T0}, {T0 + 60_000})]
print(json.dumps(out))
"""
    proc = micropython.run(code, path=[SHIMS], heap="2m")  # the test data, not the model, needs the room
    assert json.loads(proc.stdout) == json.loads(json.dumps(_cpython_values()))


def test_deterministic_and_seed_dependent() -> None:
    a, b = physics.seed_for_serial(SERIALS[0]), physics.seed_for_serial(SERIALS[1])
    assert a != b
    assert [physics.distance_mm(a, t) for t in TIMES] == [physics.distance_mm(a, t) for t in TIMES]
    assert [physics.distance_mm(a, t) for t in TIMES] != [physics.distance_mm(b, t) for t in TIMES]


def test_distance_like_the_original_data_with_noise_and_dropouts() -> None:
    seed = physics.seed_for_serial(SERIALS[0])
    values = [physics.distance_mm(seed, T0 + i * 50) for i in range(20 * 60 * 10)]  # 10 min at 20 Hz
    present = [v for v in values if v is not None]
    dropouts = len(values) - len(present)
    assert 0 < dropouts < len(values) * 0.03
    assert all(180 <= v <= 305 for v in present)
    assert min(present) < 230 < 255 < max(present)  # the foot on the step shows
    assert len(set(present)) > 40  # noise, not a square wave


def test_exercise_has_cadence_variability_and_pauses() -> None:
    seed = physics.seed_for_serial(SERIALS[1])
    steps = physics.steps_between(seed, T0, T0 + 30 * 60_000)
    gaps = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    assert 700 <= min(gaps) and max(gaps) > 5_000  # steps at a human cadence (<= 85/min), and pauses
    short = [g for g in gaps if g < 2_000]
    assert max(short) - min(short) > 300  # cadence varies
    assert steps == sorted(set(steps))


def test_accelerometer_is_time_aligned_with_steps() -> None:
    seed = physics.seed_for_serial(SERIALS[0])
    steps = physics.steps_between(seed, T0, T0 + 10 * 60_000)
    assert steps
    for start in steps[:50]:
        step = physics.step_at(seed, start + 1)
        assert step is not None and step[0] == start
        duration = step[1]
        # The push while the foot goes down (first quarter of the step) lifts z above 1 g,
        # and the distance dips mid-step.
        push = max(physics.accel_mg(seed, start + duration * k // 32)[2] for k in range(2, 7))
        assert push > 1_100
        mid = physics.distance_mm(seed, start + duration * 4 // 10)
        assert mid is None or mid < physics.baseline_mm(seed) - 25
    rest = [t for t in range(T0, T0 + 10 * 60_000, 97) if physics.step_at(seed, t) is None]
    assert rest and all(abs(physics.accel_mg(seed, t)[2] - 1000) <= 15 for t in rest)
    x, y, z = physics.accel_g(seed, steps[0])
    assert isinstance(z, float) and 0.5 < z < 1.6
