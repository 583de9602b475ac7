"""Landing records exactly as the lake contract (``stedi/contract.py``) has them, and the
object keys they are stored under.

Keys are derived from content only (board serial, boot id, sequence range; a hash for
customer records), so uploading the same batch twice overwrites one object instead of
adding a duplicate.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
from collections.abc import Sequence

from gateway.spool import Batch, Row
from stedi.contract import ACCELEROMETER_LANDING, CUSTOMER_LANDING, STEP_TRAINER_LANDING

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _segment(text: str) -> str:
    """A serial number as one safe key segment (serials are UUIDs; anything odd is escaped)."""
    return _SAFE.sub(lambda m: f"%{ord(m.group()):02X}", text) or "_"


def _suffix(gzipped: bool) -> str:
    # The contract's endings: ".jsonl" plain, ".json.gz" compressed.
    return ".json.gz" if gzipped else ".jsonl"


def batch_keys(batch: Batch, *, gzipped: bool) -> tuple[str, str]:
    """Object keys of a batch: its step_trainer file and its accelerometer file."""
    tail = f"{_segment(batch.serial)}/{batch.boot}/{batch.first_seq:010d}-{batch.last_seq:010d}{_suffix(gzipped)}"
    return STEP_TRAINER_LANDING.folder + tail, ACCELEROMETER_LANDING.folder + tail


def _num(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"accelerometer value {value!r} is not a finite number")
    return repr(float(value))


def render_batch(batch: Batch, rows: Sequence[Row]) -> tuple[bytes, bytes]:
    """JSON lines of a batch: step_trainer records (with bootId and seq) and accelerometer records."""
    serial = json.dumps(batch.serial)
    boot = int(batch.boot)
    steps = [
        f'{{"sensorReadingTime":{t},"serialNumber":{serial},"distanceFromObject":{d},"bootId":{boot},"seq":{s}}}\n'
        for s, t, d, _u, _x, _y, _z in rows
    ]
    users: dict[str, str] = {}
    accel = []
    for _s, t, _d, u, x, y, z in rows:
        user = users.get(u)
        if user is None:
            user = users[u] = json.dumps(u)
        accel.append(f'{{"user":{user},"timestamp":{t},"x":{_num(x)},"y":{_num(y)},"z":{_num(z)}}}\n')
    return "".join(steps).encode(), "".join(accel).encode()


def encode(data: bytes, gzipped: bool) -> bytes:
    # mtime=0: the same batch always compresses to the same bytes (and the same MD5).
    return gzip.compress(data, compresslevel=6, mtime=0) if gzipped else data


def customer_record(
    *,
    name: str,
    email: str,
    phone: str,
    birthday: str,
    serial: str,
    registration: int,
    last_update: int,
    research: int | None,
    public: int | None,
    friends: int | None,
) -> dict[str, object]:
    record: dict[str, object] = {
        "customerName": name,
        "email": email,
        "phone": phone,
        "birthDay": birthday,
        "serialNumber": serial,
        "registrationDate": registration,
        "lastUpdateDate": last_update,
        "shareWithResearchAsOfDate": research,
        "shareWithPublicAsOfDate": public,
        "shareWithFriendsAsOfDate": friends,
    }
    assert tuple(record) == CUSTOMER_LANDING.field_names  # the contract's fields, in its order
    return record


def customer_key(line: str, last_update: int, *, gzipped: bool) -> str:
    """One object per customer change, named by its time and content (no email in the key)."""
    digest = hashlib.sha256(line.encode()).hexdigest()[:20]
    return f"{CUSTOMER_LANDING.folder}{last_update}-{digest}{_suffix(gzipped)}"
