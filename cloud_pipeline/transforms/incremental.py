"""Which owners' rows a run must recompute, decided on customer-sized data.

A reading's fate depends on its owner's latest customer record, on which customers are curated,
and (in the ML table) on the owner's other readings near its time; its de-duplication only on rows
of the same owner (the owner is one of the compared columns).  So the runner compares what those
inputs were before this run with what they are now.  Only the customers of a new batch of
customer records can have another latest record, so only theirs are classified again, before and
after the batch (``latest_before_batch``), and collected (``batch_owners``); those that moved
(``moved``), with every owner of their serial numbers and of the new readings' (``owners_among``,
``owners_before``), are looked at here, one small record each; it names the owners
whose inputs moved: customers (accelerometer rows, ``changed_customers``) and
serial numbers (step rows, ``changed_serials``; ML rows, ``pairing_conflicts``).  Every other
owner's rows stay as they are and the new batch's rows of those owners are appended; the named
owners' rows are classified again from all their staged rows.  Every check errs towards
recomputing more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cloud_pipeline.transforms import jobs

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


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


def among(column: str, values: Iterable[str]) -> Column:
    """``column`` IN ``values``, as one SQL text (``sql_text``): the plan's owner lists run to
    thousands, and ``Column.isin`` makes a py4j round trip per value."""
    from cloud_pipeline.transforms import sql_text

    return sql_text.column(sql_text.col(column).isin(sorted(values)))


def strings(spark: SparkSession, column: str, values: Iterable[str]) -> DataFrame:
    """``values`` as a frame of one string column, from one SQL text.  ``createDataFrame`` on a
    Python list feeds Spark through a Python worker process, whose start-up cost 0.85 s of a 10x
    incremental run (its customer_curated job, in the event log; 2 cores)."""
    from pyspark.sql import functions as F

    from cloud_pipeline.transforms import sql_text

    listed = sql_text.array(*[sql_text.lit(v) for v in sorted(set(values))]).cast("array<string>")
    return spark.range(1).select(F.explode(sql_text.column(listed)).alias(column))


def batch_owners(before: DataFrame, after: DataFrame) -> tuple[dict[str | None, Owner], dict[str | None, Owner]]:
    """Every owner record of two ``jobs.latest_customers`` frames, collected in one query: a
    batch's customers before and after it (``latest_before_batch``), as many as the batch has."""
    from pyspark.sql import functions as F

    both = before.withColumn("_after", F.lit(False)).unionByName(after.withColumn("_after", F.lit(True)))
    was: dict[str | None, Owner] = {}
    now: dict[str | None, Owner] = {}
    for r in both.select("_after", "email", "serialNumber", "shareWithResearchAsOfDate").collect():
        (now if r["_after"] else was)[r["email"]] = Owner(r["serialNumber"], r["shareWithResearchAsOfDate"])
    return was, now


def moved(before: Owners, after: Owners) -> tuple[dict[str | None, Owner], dict[str | None, Owner]]:
    """The customers whose ``Owner`` differs (new, gone, or another serial number or consent):
    their owners before and after.  The record without an email is one customer too."""
    differ = {e for e in {*before, *after} if before.get(e) != after.get(e)}
    return {e: o for e, o in before.items() if e in differ}, {e: o for e, o in after.items() if e in differ}


def latest_before_batch(latest: DataFrame, earlier: DataFrame, batch: DataFrame) -> tuple[DataFrame, DataFrame, DataFrame]:
    """The customers' latest records before a batch of customer records, from those after it.

    ``latest``: ``jobs.latest_customers`` of every record, the batch's included; ``earlier`` and
    ``batch``: the accepted records of the earlier batches and of this one.  Only a customer with
    a record in the batch can have another latest record after it (the others' records are the
    same), so only theirs are classified again, from their earlier records: a filtered read, not a
    second window over every customer's records (105,000 of them at 100x).

    Returns every customer's latest record before the batch, and the batch's customers' before
    and after it (the only ones whose owner can have moved: ``batch_owners``, ``moved``).
    """
    from pyspark.sql import functions as F

    emails = F.broadcast(batch.select(F.col("email").alias("_batch_email")).distinct())
    # Null-safe, as latest_customers groups the records without an email as one customer.
    theirs = F.col("email").eqNullSafe(F.col("_batch_email"))
    theirs_before = jobs.latest_customers(jobs.classify_customers(earlier.join(emails, theirs, "left_semi")))
    theirs_after = latest.join(emails, theirs, "left_semi")
    every_before = latest.join(emails, theirs, "left_anti").unionByName(theirs_before)
    return every_before, theirs_before, theirs_after


def owners_among(latest_customers: DataFrame, serials: Iterable[str]) -> dict[str | None, Owner]:
    """The customers of ``jobs.latest_customers`` owning one of ``serials``, collected."""
    serials = sorted(set(serials))
    if not serials:
        return {}
    picked = latest_customers.filter(among("serialNumber", serials))
    rows = picked.select("email", "serialNumber", "shareWithResearchAsOfDate").collect()
    return {r["email"]: Owner(r["serialNumber"], r["shareWithResearchAsOfDate"]) for r in rows}


def owners_before(after: Owners, batch_before: Owners, batch: Set[str | None], serials: Set[str]
                  ) -> dict[str | None, Owner]:
    """Every owner of ``serials`` before a batch of customer records, from their owners after it
    (``after``: ``owners_among``): a customer of the batch as it was (``batch_before``: the batch's
    customers before it, ``batch``: their emails), every other one as it is (its records are the
    same).  ``serial_inputs`` needs a serial's owners whole."""
    return {**{e: o for e, o in after.items() if e not in batch},
            **{e: o for e, o in batch_before.items() if o.serial in serials}}


def curated_after(owners: Owners, curated_before: Set[str], changed: Set[str | None], readers: Set[str]) -> set[str]:
    """Which of ``owners`` are curated after a run: trusted (research consent) and with trusted
    readings, kept (curated before, not recomputed) or new (``readers``: their first new trusted
    readings, or recomputed customers who keep some)."""
    return {e for e, o in owners.items() if e is not None and o.consent is not None
            and ((e in curated_before and e not in changed) or e in readers)}


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


def changed_customers(before: Owners, after: Owners, held_users: Set[str]) -> set[str | None]:
    """The customers whose accelerometer rows (and steps' pairing) a run must recompute.

    An existing customer whose latest consent or serial number changed: their readings' fates and
    their steps' owner change.  A new customer whose accelerometer rows earlier batches hold back
    as of an unknown customer (``held_users``): those rows may now be trusted.  A new customer
    without held-back rows has no earlier row at all: the new batch's classification covers them.
    """
    return {e for e, o in after.items() if before.get(e) != o and (e in before or e in held_users)} | \
        {e for e in before if e not in after}


def changed_serials(before: Owners, after: Owners, curated_before: set[str], curated_after: set[str],
                    held_serials: Set[str]) -> set[str]:
    """The serial numbers whose step rows a run must recompute: those whose classification inputs
    (``serial_inputs``) changed and that have earlier rows, trusted (they had curated owners) or
    held back (``held_serials``: of step rows excluded for their owners).  A serial with neither
    has no earlier row, whatever its fate was."""
    was, now = serial_inputs(before, curated_before), serial_inputs(after, curated_after)
    changed = set()
    for serial in {*was, *now}:
        old = was.get(serial)
        if old != now.get(serial) and ((old is not None and old.any_curated) or serial in held_serials):
            changed.add(serial)
    return changed


def pairing_conflicts(first_new_reading: Mapping[str, int], last_step: Mapping[str, int], after: Owners,
                      tolerance_ms: int) -> set[str]:
    """The serials whose ML rows the new accelerometer readings could change (condition 3).

    ``first_new_reading``: per user, the earliest new trusted reading; ``last_step``: per serial,
    the latest trusted step reading before this run.  A step reading pairs with readings within
    ``tolerance_ms`` of it, so a new reading later than every old step reading of its owner's serial
    by more than the tolerance pairs with none of them; an earlier one may become a step's nearest.
    """
    conflicts = set()
    for user, first in first_new_reading.items():
        owner = after.get(user)
        serial = owner.serial if owner is not None else None
        last = last_step.get(serial) if serial is not None else None
        if serial is not None and last is not None and first - tolerance_ms <= last:
            conflicts.add(serial)
    return conflicts


def change_kinds(before: Owners, after: Owners, customers: Iterable[str | None]) -> list[str]:
    """What changed for each recomputed customer, in words (the run record's path, the log)."""
    kinds = set()
    for email in customers:
        old, new = before.get(email), after.get(email)
        if old is None:
            kinds.add("new customer with held-back readings")
        elif new is None:
            kinds.add("customer record gone")
        else:
            if old.consent is not None and new.consent is None:
                kinds.add("consent withdrawn")
            elif old.consent is None and new.consent is not None:
                kinds.add("consent granted")
            elif old.consent != new.consent:
                kinds.add("consent date moved")
            if old.serial != new.serial:
                kinds.add("serial number changed")
    return sorted(kinds)


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
