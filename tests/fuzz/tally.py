"""How many inputs each fuzz target tried and how many of them were bad (rejected and counted).

The fuzz tests add to one process-wide table; ``tests/fuzz/conftest.py`` prints it at the end
of the run and ``benchmarks/fuzz.py`` prints it after longer runs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Tally:
    tried: int = 0  # inputs fed to the target
    bad: int = 0  # inputs the target rejected (and counted)
    counted: int = 0  # rejections the target's own counters recorded (where it has counters)

    def add(self, bad: bool) -> None:
        self.tried += 1
        self.bad += int(bad)


TALLIES: dict[str, Tally] = {}


def tally(target: str) -> Tally:
    return TALLIES.setdefault(target, Tally())


def summary_lines() -> list[str]:
    return [
        f"{name}: {t.tried} inputs tried, {t.bad} bad"
        + (f", {t.counted} counted by the target" if t.counted else "")
        for name, t in sorted(TALLIES.items())
    ]
