"""A fleet of simulated customers written as landing data, shaped like the original STEDI lake.

At 1x (956 customers) it gives about 85 accelerometer and 30 step-trainer readings per customer.
Every customer's step readings share their timestamps with accelerometer readings of the same
customer, and customers' clocks start on a common one-second grid, so readings of *different*
customers often carry the same timestamp (the trap a timestamp-only join falls into).  About
``consent_rate`` of customers consent to research; a fifth of those consent only after their first
readings; some customers have an older record (consent given later, or withdrawn later).

``dirty=True`` adds what real landing zones hold: exact duplicates, truncated lines, wrong types,
missing fields, a non-UTF-8 line, readings of unknown users and serial numbers, and a ``.json.gz``
file cut short the way a writer killed mid-file leaves it.

``drift=RATE`` rewrites about that share of lines the way the original STEDI data drifted between
its published forms (``simulator/drift.py``): numeric phones, epoch dates as floats with a zero
fraction or as strings of digits, three-digit and otherwise malformed birth years, missing
descriptive fields.  Drift draws from its own random stream, so a drifted fleet holds the same
customers and readings as the clean fleet of the same seed.

Rows are generated with numpy and formatted per file, then stored with the lake's ``put`` (so a
folder and an ``s3://`` lake both work).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.drift import Drift
from stedi.lake import FolderLake, S3Lake

log = logging.getLogger(__name__)

#: The original data set: 956 customers.
CUSTOMERS_1X = 956
ACCEL_PER_CUSTOMER = 85
STEPS_PER_CUSTOMER = 30
#: Readings every 200 ms; clocks start on a 1 s grid shared by every customer.
READING_INTERVAL_MS = 200
EPOCH_2022_MS = 1_640_995_200_000
DAY_MS = 86_400_000

_FIRST = ("Ada", "Bo", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi", "Lena", "Mo", "Nia")
_LAST = ("Abara", "Berg", "Costa", "Diaz", "Evans", "Fox", "Gill", "Haas", "Ito", "Jones", "Kim", "Lund")

_CUSTOMER_LINE = (
    '{"customerName":"%s","email":"%s","phone":"%s","birthDay":"%s","serialNumber":"%s",'
    '"registrationDate":%d,"lastUpdateDate":%d,"shareWithResearchAsOfDate":%s,'
    '"shareWithPublicAsOfDate":%s,"shareWithFriendsAsOfDate":%s}'
)
_ACCEL_LINE = '{"user":"%s","timestamp":%d,"x":%r,"y":%r,"z":%r}'
_STEP_LINE = '{"sensorReadingTime":%d,"serialNumber":"%s","distanceFromObject":%d,"bootId":%d,"seq":%d}'


@dataclass
class FleetSummary:
    customers: int = 0
    consenting: int = 0
    customer_records: int = 0
    accelerometer_rows: int = 0
    step_trainer_rows: int = 0
    files: int = 0
    dirty: dict[str, int] = field(default_factory=dict)
    #: Drifted values per "entity.kind", and drifted lines per "entity.coerced" / "entity.with_warnings"
    #: (``simulator/drift.py``).
    drift: dict[str, int] = field(default_factory=dict)
    drifted_lines: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _serial(rng: np.random.Generator) -> str:
    b = rng.bytes(16)
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _json_or_null(value: int) -> str:
    return "null" if value < 0 else str(value)


def _chunk(
    rng: np.random.Generator, first: int, count: int, consent_rate: float
) -> tuple[list[str], list[str], list[str], int]:
    """Lines for customers ``first .. first+count-1``: customer, accelerometer, step, consenting."""
    customer_lines: list[str] = []
    accel_parts: list[str] = []
    step_parts: list[str] = []
    consenting = 0
    n_accel = rng.integers(ACCEL_PER_CUSTOMER - 15, ACCEL_PER_CUSTOMER + 16, size=count)
    n_steps = rng.integers(STEPS_PER_CUSTOMER - 10, STEPS_PER_CUSTOMER + 11, size=count)
    registered = EPOCH_2022_MS + rng.integers(0, 365, size=count) * DAY_MS + rng.integers(0, DAY_MS, size=count)
    # A shared one-second grid within one hour: many customers' timestamps coincide.
    start = EPOCH_2022_MS + 400 * DAY_MS + rng.integers(0, 3600, size=count) * 1000
    consents = rng.random(size=count) < consent_rate
    late = rng.random(size=count) < 0.2
    history = rng.random(size=count) < 0.1
    for i in range(count):
        idx = first + i
        name = f"{_FIRST[idx % len(_FIRST)]} {_LAST[(idx // len(_FIRST)) % len(_LAST)]}"
        email = f"{name.replace(' ', '.')}.{idx}@stedi.example"
        serial = _serial(rng)
        # Digits only, as in the original data: a phone that drifts to a JSON number keeps its text.
        phone = f"801{5_550_000 + idx % 10_000:07d}"
        birthday = f"{1950 + idx % 55}-{1 + idx % 12:02d}-{1 + idx % 28:02d}"
        reg = int(registered[i])
        t0 = int(start[i])
        n_a = int(n_accel[i])
        span = n_a * READING_INTERVAL_MS
        consent = -1
        if consents[i]:
            consenting += 1
            # Late consenters agree part-way through their readings (as-of drops the earlier ones).
            consent = t0 + span // 3 if late[i] else reg
        public = reg if consent >= 0 and idx % 3 == 0 else -1
        updated = max(reg, consent)
        if history[i]:
            # An older record: consent the opposite way, so the latest record must win.
            older_consent = -1 if consent >= 0 else reg
            customer_lines.append(
                _CUSTOMER_LINE
                % (name, email, "8010000000", birthday, serial, reg, reg - 1, _json_or_null(older_consent), "null", "null")
            )
        customer_lines.append(
            _CUSTOMER_LINE
            % (name, email, phone, birthday, serial, reg, updated + 1, _json_or_null(consent),
               _json_or_null(public), "null")
        )
        times = t0 + np.arange(n_a, dtype=np.int64) * READING_INTERVAL_MS
        xyz = np.round(rng.normal(0.0, 0.6, size=(n_a, 3)), 3).tolist()
        accel_parts.append(
            "\n".join(
                [_ACCEL_LINE % (email, t, a[0], a[1], a[2]) for t, a in zip(times.tolist(), xyz, strict=True)]
            )
        )
        n_s = min(int(n_steps[i]), n_a)
        picks = np.sort(rng.choice(n_a, size=n_s, replace=False))
        distance = (250 + 80 * np.sin(picks / 3.0) + rng.normal(0, 5, size=n_s)).astype(np.int64)
        boot = int(rng.integers(1, 2**31))
        step_parts.append(
            "\n".join(
                [
                    _STEP_LINE % (t, serial, d, boot, s)
                    for s, (t, d) in enumerate(zip(times[picks].tolist(), distance.tolist(), strict=True))
                ]
            )
        )
    return customer_lines, accel_parts, step_parts, consenting


def _dirty_lines(rng: np.random.Generator, accel: list[str], steps: list[str], tag: int) -> dict[str, list[str]]:
    """Extra bad lines for one chunk, per entity, named by kind in the summary."""
    a = accel[0].split("\n") if accel else []
    s = steps[0].split("\n") if steps else []
    out: dict[str, list[str]] = {"customer": [], "accelerometer": [], "step_trainer": []}
    if a:
        out["accelerometer"] += a[:3]  # duplicates
        out["accelerometer"].append(a[-1][: len(a[-1]) // 2])  # truncated
        out["accelerometer"].append(a[0].replace('"timestamp":', '"timestamp":"t').replace(',"x"', '","x"', 1))
        out["accelerometer"].append(
            f'{{"user":"ghost.{tag}@nowhere.example","timestamp":{EPOCH_2022_MS},"x":0.1,"y":0.2,"z":0.3}}'
        )
    if s:
        out["step_trainer"] += s[:2]  # duplicates
        out["step_trainer"].append(f'{{"sensorReadingTime":1,"serialNumber":"0-unknown-{tag}","distanceFromObject":5}}')
        out["step_trainer"].append('{"serialNumber":"missing-time","distanceFromObject":5}')
    out["customer"].append('{"customerName":"Trunc')
    return out


def _cut_gzip(complete: list[str], cut: str) -> bytes:
    """A gzip file whose writer was killed mid-line: ``complete`` lines flushed whole, then the
    start of ``cut``, and no end of stream (no last block, no trailer)."""
    stream = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header (RFC 1952)
    data = stream.compress("".join(line + "\n" for line in complete).encode()) + stream.flush(zlib.Z_FULL_FLUSH)
    return data + stream.compress(cut[: len(cut) // 2].encode()) + stream.flush(zlib.Z_SYNC_FLUSH)


#: The cut gzip file of a dirty fleet: readings of an unknown board, then a line cut short.
CUT_GZIP_LINES = 2


DIRTY_KINDS = {
    "accelerometer": {"duplicate": 3, "truncated": 1, "wrong_type": 1, "unknown_user": 1},
    "step_trainer": {"duplicate": 2, "unknown_serial": 1, "missing_required": 1},
    "customer": {"truncated": 1},
}


def generate_fleet(
    lake: FolderLake | S3Lake,
    customers: int = CUSTOMERS_1X,
    seed: int = 0,
    consent_rate: float = 0.5,
    dirty: bool = False,
    *,
    drift: float = 0.0,
    customer_offset: int = 0,
    customers_per_file: int = 100,
    progress: Callable[[int], None] | None = None,
) -> FleetSummary:
    """Write landing files for ``customers`` customers; returns what was written.

    Files are named ``fleet-s<seed>-<first customer>.json`` in each landing folder, so a second
    call with another ``customer_offset`` adds new files (an incremental delivery).
    """
    if customers < 0 or not 0.0 <= consent_rate <= 1.0 or not 0.0 <= drift <= 1.0:
        raise ValueError("customers must be >= 0, consent_rate and drift within [0, 1]")
    rng = np.random.default_rng([seed, customer_offset])
    drifter = Drift(drift, seed, customer_offset) if drift else None
    summary = FleetSummary(customers=customers)
    for first in range(customer_offset, customer_offset + customers, customers_per_file):
        count = min(customers_per_file, customer_offset + customers - first)
        cust, accel, steps, consenting = _chunk(rng, first, count, consent_rate)
        summary.consenting += consenting
        summary.customer_records += len(cust)
        summary.accelerometer_rows += sum(p.count("\n") + 1 for p in accel)
        summary.step_trainer_rows += sum(p.count("\n") + 1 for p in steps)
        extra: dict[str, list[str]] = {"customer": [], "accelerometer": [], "step_trainer": []}
        if dirty:
            extra = _dirty_lines(rng, accel, steps, first)
            for entity, kinds in DIRTY_KINDS.items():
                for kind, n in kinds.items():
                    summary.dirty[f"{entity}.{kind}"] = summary.dirty.get(f"{entity}.{kind}", 0) + n
        name = f"fleet-s{seed}-{first:08d}.json"
        if drifter is not None:
            cust, accel, steps = drifter.customers(cust), drifter.readings(accel), drifter.readings(steps)
        bodies = {"customer": cust, "accelerometer": accel, "step_trainer": steps}
        for entity, parts in bodies.items():
            text = "\n".join(parts + extra[entity]) + "\n"
            lake.put(f"{entity}/landing/{name}", text.encode())
            summary.files += 1
        if dirty and first == customer_offset:
            lake.put(f"accelerometer/landing/fleet-s{seed}-{first:08d}-latin1.json",
                     b'{"user":"Jos\xe9","timestamp":1,"x":0.0,"y":0.0,"z":0.0}\n')
            summary.files += 1
            summary.dirty["accelerometer.non_utf8"] = summary.dirty.get("accelerometer.non_utf8", 0) + 1
            ghost = [
                f'{{"sensorReadingTime":{EPOCH_2022_MS + i},"serialNumber":"0-cut-{seed}","distanceFromObject":{i}}}'
                for i in range(CUT_GZIP_LINES + 1)
            ]
            lake.put(f"step_trainer/landing/fleet-s{seed}-{first:08d}-cut.json.gz",
                     _cut_gzip(ghost[:CUT_GZIP_LINES], ghost[-1]))
            summary.files += 1
            summary.dirty["step_trainer.damaged_file"] = 1
            summary.dirty["step_trainer.unknown_serial"] = summary.dirty.get("step_trainer.unknown_serial", 0) + CUT_GZIP_LINES
        if progress:
            progress(count)
    if drifter is not None:
        summary.drift = dict(sorted(drifter.counts.items()))
        summary.drifted_lines = dict(sorted(drifter.lines.items()))
    log.info("fleet of %d customers (seed %d) written to %s: %s", customers, seed, lake.url, summary.as_dict())
    return summary
