"""Small builders shared by the gateway tests."""

from __future__ import annotations

import gzip
import json
from typing import Any

from gateway.spool import Row
from stedi.lake import FolderLake, S3Lake

BASE_MS = 1_790_000_000_000
USER = "ann@example.com"


def rows(first: int, count: int, user: str = USER) -> list[Row]:
    """Readings seq first..first+count-1, 50 ms apart, with a made-up accelerometer sample."""
    return [(s, BASE_MS + 50 * s, 200 + s % 50, user, 0.01 * (s % 7), -0.02, 1.0 + 0.001 * s) for s in range(first, first + count)]


def landing_lines(lake: FolderLake | S3Lake, entity: str) -> list[dict[str, Any]]:
    out = []
    for obj in lake.list(f"{entity}/landing/"):
        data = lake.get(obj.key)
        if obj.key.endswith(".gz"):
            data = gzip.decompress(data)
        out.extend(json.loads(line) for line in data.decode().splitlines() if line)
    return out


def seqs(lake: FolderLake | S3Lake) -> list[int]:
    return sorted(r["seq"] for r in landing_lines(lake, "step_trainer"))
