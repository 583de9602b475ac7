"""Landing lines drifted the way the original STEDI data drifted between its published forms.

The first published form of that data had phone numbers as JSON numbers (``"phone":8015551212``)
and consent dates as floats with a zero fraction (``1655564376361.0``); today's form has 53
customers with a three-digit birth year (``"983-01-01"``).  ``Drift`` rewrites a share of a clean
fleet's lines into such forms, each kind counted as ``entity.kind``:

- lossless (the pipeline coerces them back to the clean value): ``numeric_phone``,
  ``float_dates`` and ``digit_string_dates`` (epoch-ms fields), on readings ``float_time``,
  ``digit_string_time`` and ``float_distance``;
- descriptive damage (the line is kept with a warning): ``three_digit_birth_year``,
  ``malformed_birthday``, ``missing_descriptive`` (no ``customerName`` or ``phone``).

It draws from its own random stream, so the clean content of a fleet does not depend on the rate.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

_EPOCH_FIELDS = ("registrationDate", "lastUpdateDate", "shareWithResearchAsOfDate", "shareWithPublicAsOfDate",
                 "shareWithFriendsAsOfDate")
_TIME_FIELDS = ("timestamp", "sensorReadingTime")

CUSTOMER_KINDS = ("numeric_phone", "float_dates", "digit_string_dates", "three_digit_birth_year",
                  "malformed_birthday", "missing_descriptive")
READING_KINDS = ("float_time", "digit_string_time", "float_distance")
#: Kinds a kept line carries as a warning; every other kind is coerced back losslessly.
WARNING_KINDS = frozenset({"three_digit_birth_year", "malformed_birthday", "missing_descriptive"})


def _numbers_of(names: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r'"(' + "|".join(names) + r')":(-?\d+)(?=[,}])')


_EPOCH = _numbers_of(_EPOCH_FIELDS)
_TIME = _numbers_of(_TIME_FIELDS)
_DISTANCE = _numbers_of(("distanceFromObject",))
_PHONE = re.compile(r'"phone":"(\d+)"')
_BIRTHDAY = re.compile(r'"birthDay":"(\d)(\d{3})-(\d{2})-(\d{2})"')
_DROPPABLE = (re.compile(r'"customerName":"[^"]*",'), re.compile(r'"phone":"[^"]*",'))


class Drift:
    """Drifts about ``rate`` of the lines it is given; ``counts`` says what it changed."""

    def __init__(self, rate: float, seed: int, customer_offset: int = 0):
        self.rate = rate
        # Its own stream: the fleet's stream, and so its clean content, stays as without drift.
        self.rng = np.random.default_rng([seed, customer_offset, 0xD21F7])
        self.counts: Counter[str] = Counter()
        #: Lines per "entity.coerced" (some lossless kind) and "entity.with_warnings" (some damage):
        #: what the pipeline's reconciliation should count.
        self.lines: Counter[str] = Counter()

    def _picked(self, n: int) -> list[int]:
        return np.flatnonzero(self.rng.random(n) < self.rate).tolist()

    def customers(self, lines: list[str]) -> list[str]:
        out = list(lines)
        for i in self._picked(len(out)):
            kinds = self.rng.choice(len(CUSTOMER_KINDS), size=int(self.rng.integers(1, 3)), replace=False)
            done = set()
            for k in sorted(kinds.tolist()):
                before = out[i]
                out[i] = self._customer(out[i], CUSTOMER_KINDS[k])
                if out[i] != before:
                    done.add(CUSTOMER_KINDS[k])
            self._count_line("customer", done)
        return out

    def _count_line(self, entity: str, kinds: set[str]) -> None:
        if kinds - WARNING_KINDS:
            self.lines[f"{entity}.coerced"] += 1
        if kinds & WARNING_KINDS:
            self.lines[f"{entity}.with_warnings"] += 1

    def _customer(self, line: str, kind: str) -> str:
        if kind == "numeric_phone":
            new = _PHONE.sub(r'"phone":\1', line)
        elif kind == "float_dates":
            new = _EPOCH.sub(r'"\1":\2.0', line)
        elif kind == "digit_string_dates":
            new = _EPOCH.sub(r'"\1":"\2"', line)
        elif kind == "three_digit_birth_year":
            new = _BIRTHDAY.sub(r'"birthDay":"\2-\3-\4"', line)
        elif kind == "malformed_birthday":
            new = _BIRTHDAY.sub(r'"birthDay":"\4/\3/\1\2"', line)
        else:  # missing_descriptive
            new = _DROPPABLE[int(self.rng.integers(0, len(_DROPPABLE)))].sub("", line, count=1)
        if new != line:
            self.counts[f"customer.{kind}"] += 1
        return new

    def readings(self, parts: list[str]) -> list[str]:
        """``parts``: blocks of reading lines (one block per customer), accelerometer or step."""
        out = []
        for block in parts:
            lines = block.split("\n")
            for i in self._picked(len(lines)):
                kind = READING_KINDS[int(self.rng.integers(0, len(READING_KINDS)))]
                before = lines[i]
                lines[i] = self._reading(lines[i], kind)
                if lines[i] != before:
                    self._count_line("step_trainer" if '"sensorReadingTime"' in before else "accelerometer", {kind})
            out.append("\n".join(lines))
        return out

    def _reading(self, line: str, kind: str) -> str:
        entity = "step_trainer" if '"sensorReadingTime"' in line else "accelerometer"
        if kind == "float_time":
            new = _TIME.sub(r'"\1":\2.0', line)
        elif kind == "digit_string_time":
            new = _TIME.sub(r'"\1":"\2"', line)
        else:  # float_distance: accelerometer lines have no distance and stay as they are
            new = _DISTANCE.sub(r'"\1":\2.0', line)
        if new != line:
            self.counts[f"{entity}.{kind}"] += 1
        return new
