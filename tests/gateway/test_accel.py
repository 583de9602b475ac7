"""Accelerometer sources: replay (nearest / interpolated, epoch or relative times), sim, plyer."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.accel import AccelError, ReplaySource, open_source
from simulator import physics


def test_replay_interpolates_or_takes_the_nearest_sample(tmp_path: Path) -> None:
    f = tmp_path / "phone.jsonl"
    t0 = 1_790_000_000_000
    f.write_text(f'{{"t": {t0}, "x": 0, "y": 0, "z": 1}}\n[{t0 + 100}, 1.0, -1.0, 0.0]\n\n')
    interp = ReplaySource(f)
    assert interp.sample("s", t0 + 25) == pytest.approx((0.25, -0.25, 0.75))
    assert interp.sample("s", t0 - 500) == (0.0, 0.0, 1.0)  # clamped before the first sample
    assert interp.sample("s", t0 + 900) == (1.0, -1.0, 0.0)
    nearest = ReplaySource(f, mode="nearest")
    assert nearest.sample("s", t0 + 40) == (0.0, 0.0, 1.0)
    assert nearest.sample("s", t0 + 60) == (1.0, -1.0, 0.0)


def test_replay_with_relative_times_loops_from_the_first_reading(tmp_path: Path) -> None:
    f = tmp_path / "rel.jsonl"
    f.write_text("".join(f'{{"t": {t}, "x": {t / 100}, "y": 0, "z": 1}}\n' for t in range(0, 100, 10)))
    src = open_source(f"replay:{f}")
    t0 = 1_790_000_000_000
    assert src.sample("a", t0)[0] == 0.0
    assert src.sample("a", t0 + 30)[0] == pytest.approx(0.3)
    assert src.sample("a", t0 + 100 + 30)[0] == pytest.approx(0.3)  # looped


def test_bad_replay_lines_are_named(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text('{"t": 1, "x": 0, "y": 0, "z": 1}\n{"t": 2, "x": "NaN?"}\n')
    with pytest.raises(AccelError, match=r"bad.jsonl:2"):
        ReplaySource(f)
    with pytest.raises(AccelError, match="cannot read"):
        ReplaySource(tmp_path / "missing.jsonl")


def test_sim_source_is_the_physics_model_seeded_by_serial() -> None:
    src = open_source("sim")
    serial = "3f0c1e1a-8c7e-4d8e-9a51-0c3f5a7b9d21"
    t = 1_790_000_012_345
    assert src.sample(serial, t) == physics.accel_g(physics.seed_for_serial(serial), t)


def test_plyer_without_a_phone_sensor_says_so() -> None:
    with pytest.raises(AccelError, match="plyer"):
        open_source("plyer")
    with pytest.raises(AccelError, match="unknown accelerometer source"):
        open_source("gyro")


class _NoSampleYet:
    name = "phone"

    def sample(self, serial: str, t_ms: int) -> tuple[float, float, float]:
        raise AccelError("the phone's accelerometer has not reported a sample yet")

    def close(self) -> None:
        pass


def test_a_reading_without_an_accelerometer_sample_is_not_kept(tmp_path: Path) -> None:
    from gateway.customers import Customers
    from gateway.ingest import Ingest
    from gateway.spool import Spool

    spool = Spool(tmp_path)
    Customers(spool).register(email="a@x.org", name="A", phone="1", birthday="1990-01-01", serial="s")
    result = Ingest(spool, _NoSampleYet()).add("s", 1, [(0, 1_790_000_000_000, 250)])
    assert result.refused and result.acked_seq is None and spool.pending == 0
