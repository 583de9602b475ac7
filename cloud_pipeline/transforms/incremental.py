"""When a run may append its new readings instead of rebuilding, decided on customer-sized data.

An append is exact (the tables equal a full refresh's) only if the new batch changes no row an
earlier run already classified or paired.  A reading's fate depends on its owner's latest customer
record, on which customers are curated, and (in the ML table) on the owner's other readings near
its time.  So the runner compares what those inputs were before this run with what they are now,
here, on one small record per customer, and rebuilds when any of them moved for an owner that may
have readings in the tables or held back in staging.  Every check errs towards rebuilding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cloud_pipeline.transforms import jobs

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class Owner:
    """What the reading jobs use of a customer's latest record."""

    serial: str | None
    consent: int | None  # shareWithResearchAsOfDate; None: no research consent


#: email -> the latest record's fields the reading jobs use.
Owners = Mapping[str | None, Owner]


@dataclass(frozen=True)
class SerialInputs:
    """Per serial number, what ``jobs.classify_step_trainer`` and the ML pairing read of its owners."""

    any_consent: bool
    any_curated: bool
    consent: int | None  # the earliest consent of its curated owners
    curated: frozenset[str]  # the curated owners' emails: whose readings its steps pair with


def owners_of(latest_customers: DataFrame) -> dict[str | None, Owner]:
    """``jobs.latest_customers`` collected: one small record per customer."""
    picked = latest_customers.select("email", "serialNumber", "shareWithResearchAsOfDate")
    return {r["email"]: Owner(r["serialNumber"], r["shareWithResearchAsOfDate"]) for r in picked.collect()}


def trusted_emails(owners: Owners) -> set[str]:
    """The emails of customer_trusted: latest records with research consent (``classify_customers``)."""
    return {e for e, o in owners.items() if e is not None and o.consent is not None}


def serial_inputs(owners: Owners, curated: set[str]) -> dict[str, SerialInputs]:
    """``classify_step_trainer``'s per-serial aggregation, in Python (a serial that is None matches
    no reading, so it is left out)."""
    grouped: dict[str, list[tuple[str | None, Owner]]] = {}
    for email, owner in owners.items():
        if owner.serial is not None:
            grouped.setdefault(owner.serial, []).append((email, owner))
    result = {}
    for serial, members in grouped.items():
        mine = {e for e, _ in members if e in curated and e is not None}
        consents = [o.consent for e, o in members if e in mine and o.consent is not None]
        result[serial] = SerialInputs(
            any_consent=any(o.consent is not None for _, o in members),
            any_curated=bool(mine),
            consent=min(consents) if consents else None,
            curated=frozenset(mine),
        )
    return result


def masked(email: str | None) -> str:
    """An email as a log line may show it: its first letter and its domain."""
    if not email:
        return repr(email)
    name, _, domain = email.partition("@")
    return f"{name[:1]}***@{domain}"


def customer_blocker(before: Owners, after: Owners, curated_before: set[str], curated_after: set[str],
                     held_users: Set[str], held_serials: Set[str]) -> str | None:
    """Why the new customer records forbid an append (conditions 1 and 2), or None.

    1. An existing customer's latest consent or serial number changed: their readings' fates
       (and their steps' pairing) change.
    2. A customer became known (a new email), or a serial's classification inputs changed, whose
       rows earlier batches hold back (``held_users``: of accelerometer rows of unknown
       customers; ``held_serials``: of step rows excluded for their owners): those rows may now be
       trusted.  A serial
       that had curated owners and whose inputs changed always rebuilds: its trusted steps may
       change fate or pair with another owner's readings.
    """
    for email, owner in before.items():
        now = after.get(email)
        if now is not None and now != owner:
            return f"customer {masked(email)} changed consent or serial number"
    for email in sorted(e for e in after if e is not None and e not in before and e in held_users):
        return f"new customer {masked(email)} has accelerometer rows held back as of an unknown customer"
    was, now_ = serial_inputs(before, curated_before), serial_inputs(after, curated_after)
    for serial in sorted({*was, *now_}):
        old, new = was.get(serial), now_.get(serial)
        if old == new:
            continue
        if old is not None and old.any_curated:
            return f"serial {serial} had curated owners and its owners changed"
        if serial in held_serials:
            return f"serial {serial}'s owners changed and it has step rows held back"
    return None


def pairing_blocker(first_new_reading: Mapping[str, int], last_step: Mapping[str, int], after: Owners,
                    tolerance_ms: int) -> str | None:
    """Why the new accelerometer readings could pair with a step reading already in the ML table
    (condition 3), or None.

    ``first_new_reading``: per user, the earliest new trusted reading; ``last_step``: per serial,
    the latest trusted step reading before this run.  A step reading pairs with readings within
    ``tolerance_ms`` of it, so a new reading later than every old step reading of its owner's serial
    by more than the tolerance pairs with none of them.
    """
    for user, first in sorted(first_new_reading.items()):
        owner = after.get(user)
        serial = owner.serial if owner is not None else None
        last = last_step.get(serial) if serial is not None else None
        if last is not None and first - tolerance_ms <= last:
            return (f"a new accelerometer reading of {masked(user)} is within {tolerance_ms} ms of or before "
                    f"the latest step reading of serial {serial} already paired")
    return None


def new_copies_marked(classified: DataFrame, existing: DataFrame, columns: Iterable[str]) -> DataFrame:
    """A batch's classification with each trusted row that ``existing`` already holds marked
    ``reconcile.ALREADY_KEPT`` instead of trusted (``existing``: the table's rows, distinct).

    Compared with null-safe equality: ``_distinct_trusted`` groups nulls together, so a copy with
    a null value is a copy too.
    """
    from functools import reduce

    from pyspark.sql import functions as F

    from cloud_pipeline.transforms.reconcile import ALREADY_KEPT

    cols = list(columns)
    trusted = classified.filter(F.col(jobs.FATE) == jobs.TRUSTED).select(*[F.col(c).alias(f"_new_{c}") for c in cols])
    # The table is large and the batch small: the batch's rows are broadcast and the table streams
    # past them once (no shuffle of the table); only the copies found are joined back.
    found = reduce(lambda a, b: a & b, [F.col(c).eqNullSafe(F.col(f"_new_{c}")) for c in cols])
    copies = existing.join(F.broadcast(trusted), found, "left_semi")
    old = copies.select(*[F.col(c).alias(f"_old_{c}") for c in cols], F.lit(True).alias("_seen"))
    same = reduce(lambda a, b: a & b, [F.col(c).eqNullSafe(F.col(f"_old_{c}")) for c in cols])
    joined = classified.join(F.broadcast(old), same & (F.col(jobs.FATE) == jobs.TRUSTED), "left")
    fate = F.when(F.col("_seen"), F.lit(ALREADY_KEPT)).otherwise(F.col(jobs.FATE))
    return joined.select(*cols, fate.alias(jobs.FATE), jobs.COUNT)
