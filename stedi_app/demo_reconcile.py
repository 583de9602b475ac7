"""The demo's end-to-end accounting: what the boards made against what step_trainer landing holds.

Every reading is named by (serial, boot id, sequence number).  A board that was told to stop
sampling reports ``next_seq`` in its status: it made exactly the readings 0 .. next_seq - 1 of
that boot.  Landing is read back from the lake itself (folder or S3), never taken from the
gateway's own counters, so the figures are computed from data.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from stedi.contract import STEP_TRAINER_LANDING, is_landing_file
from stedi.lake import FolderLake, S3Lake

log = logging.getLogger(__name__)

ReadingKey = tuple[str, int, int]  # (serial, bootId, seq)


@dataclass(frozen=True)
class BoardCount:
    """What one board reported after it stopped sampling."""

    serial: str
    boot_id: int
    next_seq: int  # readings made in this boot: seq 0 .. next_seq - 1
    dropped: int = 0  # readings the board's full ring buffer threw away


@dataclass
class Reconciliation:
    produced: int
    landed: int  # step_trainer landing rows of the demo's boards
    lost: int  # produced readings with no landing row
    duplicated: int  # landing rows beyond one per (serial, boot, seq)
    unexpected: int  # landing rows naming a reading no board reported making
    unreadable: int  # landing lines that are not a step reading with provenance
    per_board: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.unexpected == 0 and self.unreadable == 0


def landing_lines(lake: FolderLake | S3Lake, entity: str) -> list[bytes]:
    """Every non-blank line of an entity's landing files (``.json.gz`` unpacked)."""
    lines: list[bytes] = []
    for obj in lake.list(f"{entity}/landing/"):
        name = obj.key.rsplit("/", 1)[-1]
        if not is_landing_file(obj.key) or name.startswith((".", "_")):
            continue
        data = lake.get(obj.key)
        if obj.key.endswith(".gz"):
            data = gzip.decompress(data)
        lines.extend(line for line in data.splitlines() if line.strip())
    return lines


def step_keys(lines: list[bytes]) -> tuple[list[ReadingKey], int]:
    """(serial, bootId, seq) of each step_trainer landing line, and how many lines had none."""
    keys: list[ReadingKey] = []
    unreadable = 0
    for line in lines:
        try:
            record: Any = json.loads(line)
            keys.append((str(record["serialNumber"]), int(record["bootId"]), int(record["seq"])))
        except (ValueError, KeyError, TypeError):
            unreadable += 1
    return keys, unreadable


def reconcile(boards: list[BoardCount], landed: list[ReadingKey], unreadable: int = 0) -> Reconciliation:
    """Compare by (serial, boot, seq): lost = produced - landed set, duplicated = extra copies."""
    counts = Counter(landed)
    per_board: dict[str, dict[str, int]] = {}
    produced = lost = 0
    mine: set[str] = set()
    for b in boards:
        mine.add(b.serial)
        have = {seq for (serial, boot, seq), _n in counts.items() if serial == b.serial and boot == b.boot_id}
        missing = sum(1 for s in range(b.next_seq) if s not in have)
        rows = sum(n for (serial, boot, _s), n in counts.items() if serial == b.serial and boot == b.boot_id)
        per_board[b.serial] = {"boot": b.boot_id, "produced": b.next_seq, "landed": rows, "lost": missing,
                               "duplicated": rows - len(have), "board_dropped": b.dropped}
        produced += b.next_seq
        lost += missing
    known = {(b.serial, b.boot_id): b.next_seq for b in boards}
    unexpected = sum(n for (serial, boot, seq), n in counts.items()
                     if not (0 <= seq < known.get((serial, boot), 0)))
    landed_rows = sum(n for (serial, _b, _s), n in counts.items() if serial in mine)
    duplicated = sum(n - 1 for n in counts.values())
    if unexpected:
        log.warning("%d landing rows name readings no board reported making", unexpected)
    return Reconciliation(produced, landed_rows, lost, duplicated, unexpected, unreadable, per_board)


def reconcile_lake(lake: FolderLake | S3Lake, boards: list[BoardCount]) -> Reconciliation:
    keys, unreadable = step_keys(landing_lines(lake, STEP_TRAINER_LANDING.entity))
    return reconcile(boards, keys, unreadable)
