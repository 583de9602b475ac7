"""The run's reconciliation: every landing row in exactly one category, counted without extra passes.

Counts are Spark *observations*: aggregates that ride along with the action that writes a table
(``DataFrame.observe``), so reconciling costs no separate scan of the data.  The staging write
counts each new batch's rows per rule (kept in the state file, per batch, because later runs
reconcile over every batch without parsing it again); each landing job's write counts its
classification per fate; each table write counts its rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

from cloud_pipeline.transforms import jobs
from cloud_pipeline.transforms.landing import RULES

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, Observation

ACCEPTED = "accepted"
ROWS = "rows"
#: Kept rows with a value coerced losslessly, and kept rows with warnings: subsets of the
#: accepted rows, reported beside the categories, never added to them.
COERCED = "coerced"
WARNED = "with_warnings"

#: Every fate a landing job can give a row.
FATES = (
    jobs.TRUSTED,
    jobs.SUPERSEDED,
    jobs.EXCLUDED_CONSENT,
    jobs.BEFORE_CONSENT,
    jobs.UNKNOWN_CUSTOMER,
    jobs.NOT_CURATED,
)
_SEP = "__"


class Reconciliation(TypedDict):
    """One landing table's rows, each in exactly one category: ``reconcile``'s result.

    A fate appears only when some row has it; a job that keeps one row per exact copy always
    reports ``trusted`` and ``duplicate``.  Kept in the state and the run records as it is.
    """

    landing: int
    trusted: NotRequired[int]
    superseded: NotRequired[int]
    duplicate: NotRequired[int]
    excluded_no_consent: NotRequired[int]
    excluded_before_consent: NotRequired[int]
    excluded_unknown_customer: NotRequired[int]
    excluded_not_curated: NotRequired[int]
    quarantined: int
    quarantined_by_rule: dict[str, int]
    #: Accepted rows with a value coerced losslessly / with warnings (absent in older records).
    coerced: NotRequired[int]
    with_warnings: NotRequired[int]
    balanced: bool


def rows_in(reconciliation: Reconciliation, category: str) -> int:
    """The rows of one category ("landing", a fate, "quarantined"); 0 when no row has that fate."""
    counts: Mapping[str, object] = reconciliation
    value = counts.get(category, 0)
    return value if isinstance(value, int) else 0


def _zero_if_null(column: Column) -> Column:
    from pyspark.sql import functions as F

    # A sum over no rows is null, not zero.
    return F.coalesce(column, F.lit(0).cast("long"))


def observe(df: DataFrame, name: str, metrics: list[Column]) -> tuple[DataFrame, Observation]:
    """``df`` with ``metrics`` observed; read them with ``.get`` after an action on the result."""
    from pyspark.sql import Observation

    observation = Observation(name)
    return df.observe(observation, *metrics), observation


def staging_metrics() -> list[Column]:
    """Rows of a staging batch that passed every rule, rows per rule, and the accepted rows that
    were coerced or carry warnings."""
    from pyspark.sql import functions as F

    return [F.count_if(F.col("_rule").isNull()).alias(ACCEPTED)] + [
        F.count_if(F.col("_rule") == rule).alias(rule) for rule in RULES
    ] + [
        F.count_if(F.col("_coerced").isNotNull()).alias(COERCED),
        F.count_if(F.col("_warnings").isNotNull()).alias(WARNED),
    ]


def staging_counts(observed: dict[str, Any]) -> dict[str, int]:
    """``staging_metrics`` as {"accepted": n, <rule>: n, ...}."""
    return {k: int(v) for k, v in observed.items()}


def fate_metrics(weighted: bool) -> list[Column]:
    """Per fate: landing rows (``_n`` summed when each kept row stands for its duplicates) and kept rows."""
    from pyspark.sql import functions as F

    metrics = []
    for fate in FATES:
        mine = F.col(jobs.FATE) == fate
        kept = F.count_if(mine)
        landing = _zero_if_null(F.sum(F.when(mine, F.col(jobs.COUNT)))) if weighted else kept
        metrics += [landing.alias(fate + _SEP + "landing"), kept.alias(fate + _SEP + "kept")]
    return metrics


#: The fate an appending run gives a new trusted row that is an exact copy of one an earlier run
#: kept: a duplicate, counted apart so that the copies of the batch and of the table add up.
ALREADY_KEPT = "already_kept"


def already_kept_metric() -> Column:
    """The landing rows a batch's already-kept rows stand for (``ALREADY_KEPT``)."""
    from pyspark.sql import functions as F

    mine = F.col(jobs.FATE) == ALREADY_KEPT
    return _zero_if_null(F.sum(F.when(mine, F.col(jobs.COUNT)))).alias(ALREADY_KEPT)


#: The observed owners of held-back rows (``held_back_metric``).
HELD_BACK = "held_back"


def held_back_metric(owner: str, fates: tuple[str, ...]) -> Column:
    """The distinct ``owner`` values of rows with one of ``fates``: observed with the fates, so the
    held-back index costs no pass of its own (one value per customer or serial, customer-sized).

    Observed as JSON text (``held_back_owners`` reads it): Spark 3.5's ``Observation.get``, the Spark
    of AWS Glue 5.x, hands an array metric over as an unconverted Java object, a string it converts.
    """
    from pyspark.sql import functions as F

    return F.to_json(F.collect_set(F.when(F.col(jobs.FATE).isin(*fates), F.col(owner)))).alias(HELD_BACK)


def held_back_owners(observed: Mapping[str, Any]) -> set[str]:
    """The owners ``held_back_metric`` observed (a missing metric is a KeyError, never "none": an
    empty index would let a later run append past rows it holds back)."""
    return {v for v in json.loads(observed[HELD_BACK]) if v is not None}


def rows_metric() -> list[Column]:
    from pyspark.sql import functions as F

    return [F.count(F.lit(1)).alias(ROWS)]


def reconcile(
    batches: dict[str, dict[str, int]], fates: dict[str, Any], weighted: bool, already_kept: int = 0
) -> Reconciliation:
    """Landing rows of one table split into exactly one category each; ``balanced`` checks the sum.

    ``batches``: the staging counts of every batch the table is built from; ``fates``: the
    observed ``fate_metrics`` of its classification; ``already_kept``: rows of an appended batch
    that are copies of rows the table already holds (duplicates).
    """
    accepted_rows = sum(counts.get(ACCEPTED, 0) for counts in batches.values())
    landing = accepted_rows + sum(counts.get(r, 0) for counts in batches.values() for r in RULES)
    rules = {r: sum(counts.get(r, 0) for counts in batches.values()) for r in RULES}
    split = fate_split(fates, weighted, already_kept)
    accounted = sum(split.values()) + sum(rules.values())
    # The fates are keys of Reconciliation, named by FATES rather than spelled out one by one.
    return cast(Reconciliation, {
        "landing": landing,
        **dict(sorted(split.items())),
        "quarantined": sum(rules.values()),
        "quarantined_by_rule": rules,
        # Batches staged before these were counted report 0.
        COERCED: sum(counts.get(COERCED, 0) for counts in batches.values()),
        WARNED: sum(counts.get(WARNED, 0) for counts in batches.values()),
        # Both halves must hold: classified rows are exactly the accepted ones, and all add up.
        "balanced": accounted == landing and sum(split.values()) == accepted_rows,
    })


def fate_split(fates: Mapping[str, Any], weighted: bool, already_kept: int = 0) -> dict[str, int]:
    """The observed ``fate_metrics`` as landing rows per category, as ``reconcile`` reports them."""
    split: dict[str, int] = {}
    for fate in FATES:
        n, kept = int(fates[fate + _SEP + "landing"]), int(fates[fate + _SEP + "kept"])
        if fate == jobs.TRUSTED and weighted:
            # A kept row stands for n landing rows: n - kept of them were exact duplicates.
            split[jobs.TRUSTED] = kept
            split[jobs.DUPLICATE] = n - kept + already_kept
        elif n:
            split[fate] = n
    return split


#: Every category a row of an accepted line can be counted in.
_CATEGORIES = (*FATES, jobs.DUPLICATE)


def replace_rows(before: Reconciliation, removed: Mapping[str, int], added: Mapping[str, int],
                 weighted: bool) -> Reconciliation:
    """``before`` with some owners' rows counted again: ``removed`` (``fate_split`` of their rows as
    ``before`` classified them) taken out, ``added`` (of all their rows, classified now) put in.

    ``balanced`` is checked again on the result: every count non-negative, and the categories add
    up to the accepted lines.  A category left empty disappears, as ``reconcile`` leaves it out.
    """
    counts = {c: rows_in(before, c) - removed.get(c, 0) + added.get(c, 0) for c in _CATEGORIES}
    always = (jobs.TRUSTED, jobs.DUPLICATE) if weighted else ()
    split = {c: n for c, n in counts.items() if n or c in always}
    accepted_rows = before["landing"] - before["quarantined"]
    result: dict[str, object] = {k: v for k, v in before.items() if k not in _CATEGORIES}
    result.update(split)
    result["balanced"] = (all(n >= 0 for n in split.values()) and sum(split.values()) == accepted_rows
                          and sum(before["quarantined_by_rule"].values()) == before["quarantined"])
    return cast(Reconciliation, dict(sorted(result.items())))


def add(before: Reconciliation, batch: Reconciliation) -> Reconciliation:
    """The reconciliation of a table after an append: ``before``'s rows plus the new batch's.

    Exact only when no row counted in ``before`` changed category, which is what the append
    path's conditions guarantee.  A category appears when either side has it, as ``reconcile``
    would report it over all batches at once.
    """
    counts: Mapping[str, object] = before
    more: Mapping[str, object] = batch
    keys = [k for k in {*counts, *more} if k not in ("quarantined_by_rule", "balanced")]
    total = {k: rows_in(before, k) + rows_in(batch, k) for k in keys}
    rules = {r: before["quarantined_by_rule"].get(r, 0) + batch["quarantined_by_rule"].get(r, 0) for r in RULES}
    return cast(Reconciliation, {
        **dict(sorted(total.items())),
        "quarantined_by_rule": rules,
        "balanced": before["balanced"] and batch["balanced"],
    })
