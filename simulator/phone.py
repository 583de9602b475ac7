"""The simulated phone's accelerometer: the person-on-a-step-trainer model as seen by a phone.

The gateway loads this by name for ``--accel sim`` (``gateway.accel.SIM_PHONE_MODULE``): it is a
source of the gateway's ``AccelSource`` shape (``name``, ``mode``, ``sample``, ``close``) without
importing the gateway.  The phone belongs to the customer using board ``serial``; its stream is
the model seeded with ``seed_for_serial(serial)``, the same seed the virtual board's distance
sensor uses, so both describe the same steps.
"""

from __future__ import annotations

from simulator import physics


class SimSource:
    name = "sim"

    def __init__(self, mode: str = "interpolate"):
        self.mode = mode  # the model is a function of time: nearest and interpolated agree
        self._seeds: dict[str, int] = {}

    def sample(self, serial: str, t_ms: int) -> tuple[float, float, float]:
        seed = self._seeds.get(serial)
        if seed is None:
            seed = self._seeds[serial] = physics.seed_for_serial(serial)
        return physics.accel_g(seed, t_ms)

    def close(self) -> None:
        pass
