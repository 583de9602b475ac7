"""The ``sim`` accelerometer source: the simulator's person-on-a-step-trainer model.

The simulated phone belongs to the customer using board ``serial``; its stream is the
model seeded with ``seed_for_serial(serial)``, the same seed the virtual board's distance
sensor uses, so both describe the same steps.
"""

from __future__ import annotations

from gateway.accel import Mode, Sample


class SimSource:
    name = "sim"

    def __init__(self, mode: Mode = "interpolate"):
        from simulator import physics  # only when chosen: the simulator is not needed on phones

        self._physics = physics
        self.mode: Mode = mode  # the model is a function of time: nearest and interpolated agree
        self._seeds: dict[str, int] = {}

    def sample(self, serial: str, t_ms: int) -> Sample:
        seed = self._seeds.get(serial)
        if seed is None:
            seed = self._seeds[serial] = self._physics.seed_for_serial(serial)
        return self._physics.accel_g(seed, t_ms)

    def close(self) -> None:
        pass
