"""Writes tests/firmware/vectors.json: protocol frames with their decoded values.

Run ``python -m tests.firmware.make_vectors`` after a deliberate protocol change; the test
suite checks that the file matches this generator and that both interpreters agree with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from firmware.board import stedi_protocol as p

VECTORS = Path(__file__).with_name("vectors.json")
T0 = 1_700_000_000_000


def _batch(name: str, boot_id: int, first_seq: int, readings: list[tuple[int, int, int]]) -> dict[str, Any]:
    frame = p.encode_batch(boot_id, first_seq, readings)
    return {"name": name, "hex": frame.hex(), "boot_id": boot_id, "first_seq": first_seq,
            "readings": [list(r) for r in readings]}


def _corrupt(frame: bytes, index: int, value: int, fix_crc: bool) -> str:
    b = bytearray(frame)
    b[index] = value
    if fix_crc:
        c = p.crc16(b, 0, len(b) - 2)
        b[-2], b[-1] = c & 0xFF, c >> 8
    return b.hex()


def build() -> dict[str, Any]:
    doc_example = [(7, T0, 100), (8, T0 + 50, 65535), (9, T0 + 100, 0)]
    full = [(1000 + i, T0 + 50 * i, (i * 37) % 4000) for i in range(p.readings_per_frame(247))]
    wrap = [(0xFFFFFFFE, T0, 1), (0xFFFFFFFF, T0 + 255, 2), (0, T0 + 255, 3)]
    batches = [
        _batch("doc example", 0x1234, 7, doc_example),
        _batch("single reading", 1, 0, [(0, T0 + 1, 250)]),
        _batch("full frame at MTU 247", 0xFFFF, 1000, full),
        _batch("seq wraps, max delta, zero delta", 42, 0xFFFFFFFE, wrap),
        _batch("year 2200 timestamp", 9, 5, [(5, 7_258_118_400_000, 12), (6, 7_258_118_400_020, 13)]),
    ]
    good = bytes.fromhex(batches[0]["hex"])
    bad_batches = [
        {"name": "empty", "hex": "", "error": "too short"},
        {"name": "header only", "hex": good[:16].hex(), "error": "too short"},
        {"name": "flipped distance bit", "hex": _corrupt(good, 17, good[17] ^ 1, False), "error": "CRC"},
        {"name": "bad CRC byte", "hex": _corrupt(good, len(good) - 1, good[-1] ^ 0xFF, False), "error": "CRC"},
        {"name": "version 2", "hex": _corrupt(good, 0, 2, True), "error": "version"},
        {"name": "unknown flags", "hex": _corrupt(good, 1, 0x81, True), "error": "flag"},
        {"name": "count says 4", "hex": _corrupt(good, 14, 4, True), "error": "length"},
        {"name": "count zero", "hex": _corrupt(good, 14, 0, True), "error": "no readings"},
        {"name": "truncated", "hex": good[:-3].hex(), "error": "CRC"},
    ]
    controls = [
        {"name": "time sync", "hex": p.encode_time_sync(T0 + 123).hex(), "op": 1, "value": T0 + 123, "boot_id": None},
        {"name": "ack", "hex": p.encode_ack(4096).hex(), "op": 2, "value": 4096, "boot_id": None},
        {"name": "ack with boot", "hex": p.encode_ack(0xFFFFFFFF, 0xBEEF).hex(), "op": 2, "value": 0xFFFFFFFF,
         "boot_id": 0xBEEF},
        {"name": "resume", "hex": p.encode_resume(0).hex(), "op": 3, "value": 0, "boot_id": None},
        {"name": "resume with boot", "hex": p.encode_resume(77, 1).hex(), "op": 3, "value": 77, "boot_id": 1},
        {"name": "set rate 50", "hex": p.encode_set_rate(50).hex(), "op": 4, "value": 50, "boot_id": None},
        {"name": "start", "hex": p.encode_start().hex(), "op": 5, "value": None, "boot_id": None},
        {"name": "stop", "hex": p.encode_stop().hex(), "op": 6, "value": None, "boot_id": None},
    ]
    bad_controls = [
        {"name": "empty", "hex": "", "error": "empty"},
        {"name": "unknown opcode", "hex": "ff", "error": "opcode"},
        {"name": "opcode zero", "hex": "00", "error": "opcode"},
        {"name": "time sync short", "hex": "0100", "error": "9 bytes"},
        {"name": "time sync in 1970", "hex": "01" + (5).to_bytes(8, "little").hex(), "error": "plausible"},
        {"name": "ack 6 bytes", "hex": "020100000000", "error": "5 or 7"},
        {"name": "rate 0", "hex": "0400", "error": "1..50"},
        {"name": "rate 51", "hex": "0433", "error": "1..50"},
        {"name": "rate long", "hex": "041400", "error": "2 bytes"},
        {"name": "start with payload", "hex": "0500", "error": "1 byte"},
    ]
    status_fields: dict[str, Any] = {
        "firmware_version": "1.2.3", "boot_id": 0xABCD, "next_seq": 123456, "fill": 4000,
        "capacity": 6000, "dropped": 17, "sensor_errors": 3, "malformed_writes": 2,
        "battery_pct": 87, "rate_hz": 20, "clock_synced": True, "sampling": False,
    }
    enc = dict(status_fields, firmware_version=p.parse_version(status_fields["firmware_version"]))
    statuses = [{"name": "typical", "hex": p.encode_status(**enc).hex(), "fields": status_fields}]
    unknown = dict(enc, battery_pct=255, clock_synced=False, sampling=True)
    statuses.append({"name": "battery unknown", "hex": p.encode_status(**unknown).hex(),
                     "fields": dict(status_fields, battery_pct=None, clock_synced=False, sampling=True)})
    crc = [{"ascii": "123456789", "crc": 0x29B1}, {"ascii": "", "crc": 0xFFFF}, {"ascii": "A", "crc": 0xB915}]
    return {"crc": crc, "batches": batches, "bad_batches": bad_batches, "controls": controls,
            "bad_controls": bad_controls, "statuses": statuses}


def render() -> str:
    return json.dumps(build(), indent=1) + "\n"


if __name__ == "__main__":
    VECTORS.write_text(render())
    print(f"wrote {VECTORS}")
