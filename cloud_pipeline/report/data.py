"""The pipeline report's figures: gathered with Spark, only small aggregates reach the driver.

Each ``*_of`` function is a pure function of DataFrames that returns plain Python data (a few
hundred values at most); ``gather`` reads the lake's tables and the latest run record and calls
them.  Rendering lives in ``report_plots.py`` (matplotlib) and ``report_html.py`` (the page).

No personal data leaves the lake through the report: tables are counted, readings per customer
are reduced to a histogram (no emails), the sample signal comes from ``machine_learning_curated``
by its pseudonymous ``customerKey``, and quarantine examples show the rule's reason and the file,
never the rejected line (it may hold an email or a name).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from cloud_pipeline.storage.catalog import table_frames
from cloud_pipeline.storage.state import RunRecord
from cloud_pipeline.storage.store import PipelineStore
from stedi.contract import QUARANTINE_TABLE, RUNS_FOLDER, TABLES, WARNINGS_TABLE
from stedi.lake import LakeError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
#: Points of the sample customer's signal drawn at most (the earliest ones).
MAX_POINTS = 2000
#: Bars of a readings-per-customer histogram at most.
MAX_BINS = 20
#: Up to this many customers each get their own bar (ranked); more are binned into a histogram.
MAX_RANKED = 40
#: Example reasons shown per quarantine rule and table.
EXAMPLES = 3
#: Time buckets of the consent curve, finest first: a demo's customers all register within a
#: minute, the original data's over a year.
BUCKET_NAMES = {1000: "second", 60_000: "minute", 3_600_000: "hour", DAY_MS: "day"}
BUCKETS = tuple(BUCKET_NAMES)
MAX_STEPS = 1000


class EmptyLakeError(LakeError):
    """Nothing to report: no landing files and no pipeline run."""


@dataclass(frozen=True)
class TableRows:
    name: str
    entity: str
    zone: str  # landing | trusted | curated | quarantine
    rows: int
    version: str | None  # the committed version; None for landing, quarantine and unbuilt tables
    built: bool


@dataclass(frozen=True)
class QuarantineGroup:
    table: str
    rule: str
    rows: int
    #: (reason, source file) of a few rejected lines; the raw line is deliberately left out.
    examples: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Signal:
    """One customer's paired readings from machine_learning_curated, in step-reading order."""

    customer_key: str
    total_rows: int  # the customer's rows in the table (``step_time`` may hold only the first ones)
    step_time: list[int]  # sensorReadingTime, epoch ms
    distance: list[int]
    accel_time: list[int]  # timestamp of the paired accelerometer reading, epoch ms
    magnitude: list[float]  # sqrt(x^2 + y^2 + z^2) in g


@dataclass(frozen=True)
class Histogram:
    """How many readings each customer (or step trainer) has.

    Few owners: ``ranked`` holds each one's readings, most first (no names or keys).  Many:
    ``counts[i]`` owners have between ``lows[i]`` and ``highs[i]`` readings."""

    table: str
    per: str  # what one count is per: "customer" or "step trainer"
    owners: int  # customers (or trainers) counted
    readings: int  # their readings in total
    ranked: list[int] = field(default_factory=list)
    lows: list[int] = field(default_factory=list)
    highs: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ConsentCurve:
    """Cumulative customers registered and consenting to research, per time bucket (UTC).

    The curve starts one bucket before the first event at zero and ends one bucket after the
    last, so even events that all fall in one bucket draw a visible step."""

    bucket_ms: int  # one of BUCKETS: the finest that keeps the curve within MAX_STEPS buckets
    starts_ms: list[int]  # bucket starts, epoch ms
    registered: list[int]
    consented: list[int]

    @property
    def bucket_name(self) -> str:
        return BUCKET_NAMES[self.bucket_ms]


@dataclass
class ReportData:
    lake: str
    generated_at: datetime
    last_run: str | None
    run: RunRecord | None  # the record of the run that made the current state
    tables: list[TableRows]
    quarantine: list[QuarantineGroup]
    #: Warnings about descriptive fields of kept lines, grouped the same way (reason: "field: reason").
    warnings: list[QuarantineGroup]
    signal: Signal | None
    histograms: list[Histogram]
    consent: ConsentCurve | None
    notes: list[str] = field(default_factory=list)


# --- pure functions over DataFrames ---------------------------------------------------------


def quarantine_of(quarantine: DataFrame, examples: int = EXAMPLES) -> list[QuarantineGroup]:
    """Rejected lines per table and rule, with a few of their reasons and files."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    counts = {(r["table"], r["rule"]): int(r["n"]) for r in
              quarantine.groupBy("table", "rule").agg(F.count(F.lit(1)).alias("n")).collect()}
    # Distinct (reason, file) pairs, the first few per group in a stable order.
    pairs = quarantine.select("table", "rule", "reason", F.coalesce("source_file", F.lit("?")).alias("source")).distinct()
    order = Window.partitionBy("table", "rule").orderBy("source", "reason")
    picked = (pairs.withColumn("i", F.row_number().over(order)).where(F.col("i") <= examples)
              .orderBy("table", "rule", "i").collect())
    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for r in picked:
        found.setdefault((r["table"], r["rule"]), []).append((r["reason"], r["source"]))
    return [QuarantineGroup(t, rule, n, tuple(found.get((t, rule), []))) for (t, rule), n in sorted(counts.items())]


def warnings_by_field(warnings: DataFrame) -> DataFrame:
    """The warnings table with each reason naming its field, to be grouped like the quarantine.

    The raw values are left out: they are descriptive fields of customers (names, phones)."""
    from pyspark.sql import functions as F

    return warnings.select("table", "rule", F.concat_ws(": ", "field", "reason").alias("reason"), "source_file")


def sample_customer_of(ml: DataFrame) -> tuple[str, int] | None:
    """The customerKey with the most rows in machine_learning_curated (ties: the smallest key)."""
    from pyspark.sql import functions as F

    top = (ml.groupBy("customerKey").agg(F.count(F.lit(1)).alias("n"))
           .orderBy(F.col("n").desc(), F.col("customerKey")).limit(1).collect())
    return (top[0]["customerKey"], int(top[0]["n"])) if top else None


def signal_of(ml: DataFrame, customer_key: str, total_rows: int, max_points: int = MAX_POINTS) -> Signal:
    """The customer's distance and accelerometer magnitude, the earliest ``max_points`` rows."""
    from pyspark.sql import functions as F

    magnitude = F.sqrt(F.col("x") * F.col("x") + F.col("y") * F.col("y") + F.col("z") * F.col("z"))
    rows = (ml.where(F.col("customerKey") == customer_key)
            .select("sensorReadingTime", "distanceFromObject", "timestamp", magnitude.alias("magnitude"))
            .orderBy("sensorReadingTime", "timestamp").limit(max_points).collect())
    return Signal(
        customer_key=customer_key,
        total_rows=total_rows,
        step_time=[int(r["sensorReadingTime"]) for r in rows],
        distance=[int(r["distanceFromObject"]) for r in rows],
        accel_time=[int(r["timestamp"]) for r in rows],
        magnitude=[float(r["magnitude"]) for r in rows],
    )


def histogram_of(df: DataFrame, owner: str, table: str, per: str, max_bins: int = MAX_BINS,
                 max_ranked: int = MAX_RANKED) -> Histogram:
    """Readings per ``owner`` value: ranked counts for a few owners, else integer bins.

    Spark counts each owner's readings, then how many owners have each count: only those counts
    reach the driver (no more rows than distinct counts), never the owner values (emails, serial
    numbers).  ``histogram_from_counts`` bins them, as for DuckDB."""
    from pyspark.sql import functions as F

    per_owner = df.where(F.col(owner).isNotNull()).groupBy(owner).agg(F.count(F.lit(1)).alias("n"))
    counts = per_owner.groupBy("n").agg(F.count(F.lit(1)).alias("k")).collect()
    return histogram_from_counts(table, per, {int(r["n"]): int(r["k"]) for r in counts}, max_bins, max_ranked)


def _per_bucket(df: DataFrame, column: str, bucket_ms: int) -> dict[int, int]:
    from pyspark.sql import functions as F

    # Integer division of epoch ms: UTC whatever the session's time zone.
    bucket = F.floor(F.col(column) / bucket_ms).alias("b")
    return {int(r["b"]): int(r["n"]) for r in
            df.where(F.col(column).isNotNull()).groupBy(bucket).agg(F.count(F.lit(1)).alias("n")).collect()}


def _span(df: DataFrame, column: str) -> tuple[int, int] | None:
    from pyspark.sql import functions as F

    row = df.agg(F.min(column).alias("lo"), F.max(column).alias("hi")).first()
    return None if row is None or row["lo"] is None else (int(row["lo"]), int(row["hi"]))


def consent_of(customer_landing: DataFrame, customer_trusted: DataFrame) -> ConsentCurve | None:
    """Registered: each email's latest landing record's registrationDate.  Consented: the
    shareWithResearchAsOfDate of customer_trusted (latest records that still consent).
    None when there is no registration or consent date at all."""
    from pyspark.sql import functions as F

    latest = (customer_landing.where(F.col("email").isNotNull() & F.col("lastUpdateDate").isNotNull())
              .groupBy("email")
              .agg(F.max_by("registrationDate", "lastUpdateDate").alias("registrationDate"))).cache()
    try:
        def per_bucket(bucket_ms: int) -> tuple[dict[int, int], dict[int, int]]:
            return (_per_bucket(latest, "registrationDate", bucket_ms),
                    _per_bucket(customer_trusted, "shareWithResearchAsOfDate", bucket_ms))

        return consent_curve(_span(latest, "registrationDate"), _span(customer_trusted, "shareWithResearchAsOfDate"),
                             per_bucket)
    finally:
        latest.unpersist()


# --- the whole report -----------------------------------------------------------------------


def lake_url(store: PipelineStore) -> str:
    """The lake's own URL: an S3 lake's, not its local cache's."""
    url = getattr(store, "url", None)
    return url if isinstance(url, str) else store.lake.url


def latest_run(store: PipelineStore, last_run: str | None) -> RunRecord | None:
    """The record of the committed run (the state names it), else the newest run record."""
    from cloud_pipeline.storage.s3_cache import CachedStore

    if last_run is not None:
        key = f"{RUNS_FOLDER}{last_run}.json"
        if isinstance(store, CachedStore):
            # A cache synced for queries holds no run records: fetch just this one.
            store.cache.mirror(key)
        if store.lake.exists(key):
            return RunRecord.from_json(store.lake.get(key))
    runs = store.runs()
    return max(runs, key=lambda r: r.run_id) if runs else None


class Aggregates(Protocol):
    """What the report asks of an engine: each answer is small plain Python data.

    ``SparkAggregates`` below computes them from DataFrames; ``duck_data.DuckAggregates`` with
    DuckDB SQL over the same files.  Both must give equal answers (tests/pipeline/test_query_engines.py)."""

    def count(self, table: str) -> int: ...

    def quarantine(self) -> list[QuarantineGroup]: ...

    def warnings(self) -> list[QuarantineGroup]: ...

    def sample_customer(self) -> tuple[str, int] | None: ...

    def signal(self, customer_key: str, total_rows: int, max_points: int) -> Signal: ...

    def histogram(self, table: str, owner: str, per: str) -> Histogram: ...

    def consent(self) -> ConsentCurve | None: ...


class SparkAggregates:
    """The report's aggregates in Spark, over the lake's tables as DataFrames."""

    def __init__(self, spark: SparkSession, store: PipelineStore):
        self.frames = table_frames(spark, store)

    def count(self, table: str) -> int:
        return int(self.frames[table].count())

    def quarantine(self) -> list[QuarantineGroup]:
        return quarantine_of(self.frames[QUARANTINE_TABLE])

    def warnings(self) -> list[QuarantineGroup]:
        return quarantine_of(warnings_by_field(self.frames[WARNINGS_TABLE]))

    def sample_customer(self) -> tuple[str, int] | None:
        return sample_customer_of(self.frames["machine_learning_curated"])

    def signal(self, customer_key: str, total_rows: int, max_points: int) -> Signal:
        return signal_of(self.frames["machine_learning_curated"], customer_key, total_rows, max_points)

    def histogram(self, table: str, owner: str, per: str) -> Histogram:
        return histogram_of(self.frames[table], owner, table, per)

    def consent(self) -> ConsentCurve | None:
        return consent_of(self.frames["customer_landing"], self.frames["customer_trusted"])


def histogram_from_counts(table: str, per: str, owners_per_count: dict[int, int], max_bins: int = MAX_BINS,
                          max_ranked: int = MAX_RANKED) -> Histogram:
    """``histogram_of`` from how many owners have each number of readings (``{readings: owners}``)."""
    owners = sum(owners_per_count.values())
    if not owners:
        return Histogram(table, per, 0, 0)
    readings = sum(n * k for n, k in owners_per_count.items())
    if owners <= max_ranked:
        ranked = [n for n in sorted(owners_per_count, reverse=True) for _ in range(owners_per_count[n])]
        return Histogram(table, per, owners, readings, ranked=ranked)
    lo, hi = min(owners_per_count), max(owners_per_count)
    width = max(1, math.ceil((hi - lo + 1) / max_bins))
    by_bin: dict[int, int] = {}
    for n, k in owners_per_count.items():
        by_bin[(n - lo) // width] = by_bin.get((n - lo) // width, 0) + k
    last = (hi - lo) // width
    return Histogram(
        table, per, owners, readings,
        lows=[lo + b * width for b in range(last + 1)],
        highs=[lo + b * width + width - 1 for b in range(last + 1)],
        counts=[by_bin.get(b, 0) for b in range(last + 1)],
    )


def consent_curve(registered_span: tuple[int, int] | None, consented_span: tuple[int, int] | None,
                  per_bucket: Callable[[int], tuple[dict[int, int], dict[int, int]]]) -> ConsentCurve | None:
    """The consent curve from the spans of the two dates and ``per_bucket(bucket_ms)``: registered
    and consenting customers per bucket (``consent_of``'s steps, shared by both engines)."""
    spans = [s for s in (registered_span, consented_span) if s is not None]
    if not spans:
        return None
    span = max(hi for _, hi in spans) - min(lo for lo, _ in spans)
    bucket_ms = next((b for b in BUCKETS if span // b <= MAX_STEPS), DAY_MS)
    registered, consented = per_bucket(bucket_ms)
    buckets = sorted(set(registered) | set(consented))
    buckets = [buckets[0] - 1, *buckets, buckets[-1] + 1]
    reg_total, con_total = 0, 0
    reg_curve, con_curve = [], []
    for b in buckets:
        reg_total += registered.get(b, 0)
        con_total += consented.get(b, 0)
        reg_curve.append(reg_total)
        con_curve.append(con_total)
    return ConsentCurve(bucket_ms, [b * bucket_ms for b in buckets], reg_curve, con_curve)


def gather(spark: SparkSession, store: PipelineStore, max_points: int = MAX_POINTS) -> ReportData:
    """Everything the report shows, aggregated in Spark."""
    check_reportable(store)
    return gather_with(SparkAggregates(spark, store), store, max_points)


def check_reportable(store: PipelineStore) -> None:
    """Refuse a lake with nothing to report: no landing files and no committed run."""
    state = store.load_state()
    landing_files = sum(len(store.landing_files(t.entity)) for t in TABLES if t.zone == "landing")
    if state.last_run is None and landing_files == 0:
        raise EmptyLakeError(f"nothing to report: {lake_url(store)} has no landing files and no pipeline run")


def gather_with(engine: Aggregates, store: PipelineStore, max_points: int = MAX_POINTS) -> ReportData:
    """Everything the report shows, from the committed state, the tables and the run records."""
    state = store.load_state()
    notes: list[str] = []
    if state.last_run is None:
        notes.append("No pipeline run has been committed in this lake yet: only the landing zone has rows. "
                     "Run `stedi pipeline run` first.")
    tables = []
    for t in TABLES:
        current = state.tables.get(t.name)
        built = t.zone == "landing" or current is not None
        tables.append(TableRows(t.name, t.entity, t.zone, engine.count(t.name) if built else 0,
                                current.version if current else None, built))
    tables.append(TableRows(QUARANTINE_TABLE, "all", "quarantine", engine.count(QUARANTINE_TABLE), None, True))
    tables.append(TableRows(WARNINGS_TABLE, "all", "warnings", engine.count(WARNINGS_TABLE), None, True))

    sample = engine.sample_customer()
    signal = engine.signal(sample[0], sample[1], max_points) if sample else None
    if signal is None:
        notes.append("machine_learning_curated is empty: no sample signal to draw.")
    histograms = [
        engine.histogram("accelerometer_trusted", "user", "customer"),
        engine.histogram("step_trainer_trusted", "serialNumber", "step trainer"),
    ]
    consent = engine.consent()
    run = latest_run(store, state.last_run)
    if run is not None and run.run_id != state.last_run:
        notes.append(f"The committed run {state.last_run} left no run record (killed after its commit?): "
                     f"the reconciliation shown is of run {run.run_id}.")
    return ReportData(
        lake=lake_url(store),
        generated_at=datetime.now(UTC),
        last_run=state.last_run,
        run=run,
        tables=tables,
        quarantine=engine.quarantine(),
        warnings=engine.warnings(),
        signal=signal,
        histograms=histograms,
        consent=consent,
        notes=notes,
    )
