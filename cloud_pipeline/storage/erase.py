"""Erasing one customer from every zone, landing included (a data subject's right to erasure).

Landing files are rewritten without the customer's lines (customer records, accelerometer
readings of their email, step readings of serial numbers only they own; unparseable lines that
contain the email or such a serial go too).  Derived zones are then rebuilt by a full-refresh
run that keeps no previous version (``PipelineRun(keep_previous=False)``): its commit deletes
every older version (the one a run otherwise keeps until the next commit too), staging batch and
quarantine batch.  The erase is
logged and recorded in ``_pipeline/runs/`` under the customer's salted key, never the email.

Of a damaged ``.json.gz`` file, all the text that can be decoded is searched.  A damaged file
with the customer's lines is rewritten as a sound one with its trusted lines only: lines decoded
from a corrupt member are dropped with the customer's (counted and logged), or the rewrite would
pass them off as sound.  A damaged file left as it is whose undecodable part could not be
searched is named in the report.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cloud_pipeline.storage.store import ENTITIES, PipelineStore
from cloud_pipeline.transforms.damaged_files import Damage, read_gzip

log = logging.getLogger(__name__)


@dataclass
class EraseReport:
    customer_key: str
    serials: list[str] = field(default_factory=list)
    shared_serials: list[str] = field(default_factory=list)
    lines_removed: dict[str, int] = field(default_factory=dict)
    files_rewritten: int = 0
    #: The landing files with lines of the customer (rewritten, or deleted when nothing else was left).
    files: list[str] = field(default_factory=list)
    #: Damaged files left as they are whose unreadable rest could not be searched for the customer.
    unsearched_files: list[str] = field(default_factory=list)
    #: Other customers' lines decoded from corrupt gzip members, dropped when their file was rewritten.
    suspect_lines_dropped: int = 0


def _lines(data: bytes, key: str) -> tuple[list[bytes], Damage | None]:
    """A landing file's lines and, for a damaged gzip file, what is wrong with it (its lines are
    then all the text that could be decoded)."""
    if not key.endswith(".gz"):
        return data.splitlines(), None
    text, damage = read_gzip(data)
    if damage is None:
        return text.splitlines(), None
    return damage.lines + [line for line in damage.rest if line], damage


def _encode(lines: list[bytes], key: str) -> bytes:
    body = b"".join(line + b"\n" for line in lines)
    return gzip.compress(body) if key.endswith(".gz") else body


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def customer_key_of(email: str, salt: str) -> str:
    """The same key the machine-learning table uses (sha256 of "salt:email")."""
    return hashlib.sha256(f"{salt}:{email}".encode()).hexdigest()


def erase_landing(store: PipelineStore, email: str, salt: str, *, dry_run: bool = False) -> EraseReport:
    """Remove the customer's lines from every landing file; ``dry_run``: only find them (nothing
    is written, the report says what would go)."""
    report = EraseReport(customer_key_of(email, salt))
    needle = email.encode()
    serials: set[str] = set()
    others: set[str] = set()
    customer_files = {o.key: _lines(store.lake.get(o.key), o.key) for o in store.landing_files("customer")}
    for lines, _ in customer_files.values():
        for line in lines:
            rec = _record(line)
            if rec is None or not isinstance(rec.get("serialNumber"), str):
                continue
            (serials if rec.get("email") == email else others).add(rec["serialNumber"])
    report.serials = sorted(serials)
    report.shared_serials = sorted(serials & others)
    if report.shared_serials:
        log.warning("serial(s) %s are shared with other customers: their step readings stay", report.shared_serials)
    own_serials = serials - others
    serial_needles = [s.encode() for s in own_serials]

    def doomed(entity: str, line: bytes) -> bool:
        rec = _record(line)
        if rec is None:
            return needle in line or any(s in line for s in serial_needles)
        if entity == "customer":
            return rec.get("email") == email
        if entity == "accelerometer":
            return rec.get("user") == email
        return rec.get("serialNumber") in own_serials

    for entity in ENTITIES:
        removed = 0
        for obj in store.landing_files(entity):
            read = customer_files.get(obj.key) if entity == "customer" else None
            content, damage = read if read is not None else _lines(store.lake.get(obj.key), obj.key)
            kept = [line for line in content if not doomed(entity, line)]
            if len(kept) != len(content):
                removed += len(content) - len(kept)
                if damage is not None and damage.suspect:
                    trusted = [line for line in damage.lines if not doomed(entity, line)]
                    report.suspect_lines_dropped += len(kept) - len(trusted)
                    kept = trusted
                report.files.append(obj.key)
                report.files_rewritten += 1
                if dry_run:
                    continue
                if kept:
                    store.lake.put(obj.key, _encode(kept, obj.key))
                else:
                    store.lake.delete(obj.key)
                if damage is not None:
                    log.warning("damaged landing file %s (%s) rewritten as a sound file without the customer's "
                                "lines%s", obj.key, damage.problem,
                                "; what could not be decoded, and what was decoded from a corrupt member, is "
                                "gone too" if damage.unreadable else "")
            elif damage is not None and damage.unreadable:
                report.unsearched_files.append(obj.key)
                log.warning("landing file %s is damaged (%s): the part that cannot be read was not searched for "
                            "the customer and stays; delete the file if it may hold their data", obj.key, damage.problem)
        report.lines_removed[entity] = removed
    return report


def erased_nothing(report: EraseReport) -> bool:
    return not any(report.lines_removed.values())


def record_erase(store: PipelineStore, report: EraseReport, rebuilt_by: str | None) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    record = {
        "erase": stamp,
        "customer_key": report.customer_key,
        "lines_removed": report.lines_removed,
        "files_rewritten": report.files_rewritten,
        "serials_removed": len(report.serials) - len(report.shared_serials),
        "serials_kept_shared": len(report.shared_serials),
        "unsearched_damaged_files": report.unsearched_files,
        "suspect_lines_dropped": report.suspect_lines_dropped,
        "rebuilt_by_run": rebuilt_by,
    }
    return store.save_record(f"erase-{stamp}", record)
