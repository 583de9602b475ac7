"""One pipeline run: stage new landing files, run the jobs, reconcile, commit atomically.

Incremental by construction: landing files are parsed once into ``_pipeline/staging/`` (Parquet)
and remembered in the state file; every run then rebuilds the trusted and curated tables from
the staged rows.  The result is therefore always the one a full run would give, consent changes
(a later record that withdraws consent) take effect on the next run, and only unseen files cost
JSON parsing.  A landing file that changed or vanished since it was staged makes its entity
re-stage from scratch (logged), as does ``--full-refresh``.
"""

from __future__ import annotations

import copy
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud_pipeline import jobs
from cloud_pipeline.config import JOB_ORDER, JOB_OUTPUT, PipelineOptions
from cloud_pipeline.landing import RULES, accepted, parse_landing, quarantined
from cloud_pipeline.schemas import table_schema
from cloud_pipeline.store import ENTITIES, STAGING_FOLDER, PipelineStore, empty_state
from stedi.contract import QUARANTINE_FOLDER, TABLES_BY_NAME

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(2)


@dataclass
class RunResult:
    run_id: str
    record: dict[str, Any]
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return all(r["balanced"] for r in self.record["reconciliation"].values())


RULE_PREFIX = "rule:"
ACCEPTED = "accepted"
ROWS = "rows"


def _count_rows(df: DataFrame, table: str, key: Column, landing: Column | None = None) -> DataFrame:
    """(table, key, landing, kept): one row per input row, summed in the run's single count action."""
    from pyspark.sql import functions as F

    return df.select(
        F.lit(table).alias("table"),
        key.alias("key"),
        (landing if landing is not None else F.lit(1)).cast("long").alias("landing"),
        F.lit(1).cast("long").alias("kept"),
    )


def _reconcile(table: str, sums: dict[tuple[str, str], tuple[int, int]], weighted: bool) -> dict[str, Any]:
    """Landing rows of one table split into exactly one category each; ``balanced`` checks the sum."""
    landing = sum(n for (t, k), (n, _kept) in sums.items() if t == table)
    rules = {r: sums.get((table, RULE_PREFIX + r), (0, 0))[0] for r in RULES}
    fates: dict[str, int] = {}
    for (t, key), (n, kept) in sums.items():
        if t != f"{table}:fate":
            continue
        if key == jobs.TRUSTED and weighted:
            # A kept row stands for n landing rows: n - 1 of them were exact duplicates.
            fates[jobs.TRUSTED] = kept
            fates[jobs.DUPLICATE] = n - kept
        else:
            fates[key] = n
    accounted = sum(fates.values()) + sum(rules.values())
    accepted_rows = sums.get((table, ACCEPTED), (0, 0))[0]
    return {
        "landing": landing,
        **dict(sorted(fates.items())),
        "quarantined": sum(rules.values()),
        "quarantined_by_rule": rules,
        # Both halves must hold: classified rows are exactly the accepted ones, and all add up.
        "balanced": accounted == landing and sum(fates.values()) == accepted_rows,
    }


class PipelineRun:
    """The steps of one run; ``run()`` executes them in order."""

    def __init__(
        self,
        spark: SparkSession,
        store: PipelineStore,
        options: PipelineOptions,
        progress: Progress | None = None,
        after_job: Callable[[str], None] | None = None,
    ):
        self.spark = spark
        self.store = store
        self.options = options
        self._report = progress or (lambda step: None)
        self.timings: dict[str, float] = {}
        self._step: tuple[str, float] | None = None
        # Called after each job wrote its table, before the commit (tests inject failures here).
        self.after_job = after_job or (lambda job: None)
        self.run_id = new_run_id()
        self.previous = store.load_state()
        self.state = copy.deepcopy(self.previous)
        self.new_files: dict[str, int] = {}
        self._cached: list[DataFrame] = []

    def progress(self, step: str) -> None:
        """Start a named step: times the previous one and tells the caller."""
        now = time.monotonic()
        if self._step is not None:
            name, began = self._step
            self.timings[name] = round(self.timings.get(name, 0.0) + now - began, 3)
        self._step = (step, now)
        self._report(step)

    # --- staging ---------------------------------------------------------------------------

    def stage(self) -> None:
        """Parse unseen landing files of every entity into one new staging batch (one Spark write)."""
        from functools import reduce

        from pyspark.sql import functions as F

        parsed = []
        for entity in ENTITIES:
            table = TABLES_BY_NAME[f"{entity}_landing"]
            current = {o.key: o.etag for o in self.store.landing_files(entity)}
            seen: dict[str, str] = self.state["files"][entity]
            stale = [k for k, etag in seen.items() if current.get(k) != etag]
            if self.options.full_refresh or stale:
                if stale and not self.options.full_refresh:
                    log.info("%s: %d landing file(s) changed or vanished; re-staging all", entity, len(stale))
                seen = {}
                self.state["files"][entity] = seen
                self.state["staging"][entity] = []
                self.state["quarantine"][entity] = []
            todo = sorted(k for k in current if k not in seen)
            self.new_files[entity] = len(todo)
            if not todo:
                log.info("%s: no new landing files", entity)
                continue
            lines = self.store.read_landing_lines(self.spark, todo)
            parsed.append(parse_landing(lines, table, self.run_id).withColumn("entity", F.lit(entity)))
            self.state["staging"][entity].append(self.run_id)
            seen.update({k: current[k] for k in todo})
            log.info("%s: staging %d new landing file(s) as batch %s", entity, len(todo), self.run_id)
        if not parsed:
            return
        self.progress("stage new landing files")
        batch = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parsed)
        batch.write.mode("overwrite").partitionBy("entity").parquet(
            self.store.batch_path(STAGING_FOLDER, self.run_id)
        )
        self.progress("quarantine")
        rejected = []
        for entity in ENTITIES:
            staged = self.store.read_staging(self.spark, entity, [self.run_id])
            if staged is not None and self.run_id in self.state["staging"][entity]:
                rejected.append(quarantined(staged, TABLES_BY_NAME[f"{entity}_landing"]))
        if rejected:
            union = reduce(lambda a, b: a.unionByName(b), rejected)
            union.write.mode("overwrite").partitionBy("table").parquet(
                self.store.batch_path(QUARANTINE_FOLDER, self.run_id)
            )
        for entity in ENTITIES:
            if Path(self.store.quarantine_path(entity, self.run_id)).is_dir():
                self.state["quarantine"][entity].append(self.run_id)

    def count_frames(self) -> list[DataFrame]:
        """Rows per rule of every entity's staging, as (table, key, landing, kept) rows to sum."""
        from pyspark.sql import functions as F

        frames = []
        for entity in ENTITIES:
            staged = self.store.read_staging(self.spark, entity, self.state["staging"][entity])
            if staged is not None:
                key = F.coalesce(F.concat(F.lit(RULE_PREFIX), F.col("_rule")), F.lit(ACCEPTED))
                frames.append(_count_rows(staged, f"{entity}_landing", key))
        return frames

    def landing(self, entity: str) -> DataFrame:
        table = TABLES_BY_NAME[f"{entity}_landing"]
        staged = self.store.read_staging(self.spark, entity, self.state["staging"][entity])
        if staged is None:
            return self.spark.createDataFrame([], table_schema(table))
        return accepted(staged, table)

    # --- jobs ------------------------------------------------------------------------------

    def _cache(self, df: DataFrame) -> DataFrame:
        df = df.cache()
        self._cached.append(df)
        return df

    def _write(self, job: str, df: DataFrame) -> DataFrame:
        """Write a job's table as a new version; returns it read back from the written files."""
        name = JOB_OUTPUT[job]
        version = self.store.write_table(df, name, self.run_id, self.options.format)
        self.state["tables"][name] = {"version": version, "format": self.options.format, "run_id": self.run_id}
        self.after_job(job)
        # Later jobs read the written files: cheaper than recomputing the lineage that made them.
        return self.store.read_table(self.spark, name, self.state)

    def _table(self, job: str) -> DataFrame:
        """The output of a job that is not part of this run: its current version."""
        return self.store.read_table(self.spark, JOB_OUTPUT[job], self.state)

    def run_jobs(self) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
        """Run the selected jobs; returns the reconciliation and rows per table.

        Each job's table is written once; the counts for the reconciliation and the summary are
        taken at the end in a single Spark action over cached classifications and written tables.
        """
        from pyspark.sql import functions as F

        selected = set(self.options.jobs)
        consent = self.options.consent
        counts = self.count_frames()
        written: dict[str, DataFrame] = {}
        reconciled: list[tuple[str, bool]] = []

        # Every landing job needs each customer's latest record, so customers are always classified.
        customers = self._cache(jobs.classify_customers(self.landing("customer")))
        customer_latest = customers.filter(F.col(jobs.FATE) != jobs.SUPERSEDED).select(*jobs.CUSTOMER_COLUMNS)

        job = "customer_landing_to_trusted"
        if job in selected:
            self.progress(job)
            customer_trusted = self._write(job, jobs.trusted_rows(customers, jobs.CUSTOMER_COLUMNS))
            counts.append(_count_rows(customers, "customer_landing:fate", F.col(jobs.FATE)))
            reconciled.append(("customer_landing", False))
        else:
            customer_trusted = self._table(job)

        job = "accelerometer_landing_to_trusted"
        if job in selected:
            self.progress(job)
            accel = self._cache(
                jobs.classify_accelerometer(self.landing("accelerometer"), customer_latest, consent)
            )
            accelerometer_trusted = self._write(job, jobs.trusted_rows(accel, jobs.ACCELEROMETER_COLUMNS))
            counts.append(
                _count_rows(accel, "accelerometer_landing:fate", F.col(jobs.FATE), F.col(jobs.COUNT))
            )
            reconciled.append(("accelerometer_landing", True))
        else:
            accelerometer_trusted = self._table(job)

        job = "customer_trusted_to_curated"
        if job in selected:
            self.progress(job)
            curated = jobs.customer_trusted_to_curated(customer_trusted, accelerometer_trusted)
            customer_curated = self._write(job, curated)
        else:
            customer_curated = self._table(job)

        job = "step_trainer_landing_to_trusted"
        if job in selected:
            self.progress(job)
            steps = self._cache(
                jobs.classify_step_trainer(
                    self.landing("step_trainer"), customer_latest, customer_curated, consent
                )
            )
            step_trainer_trusted = self._write(job, jobs.trusted_rows(steps, jobs.STEP_TRAINER_COLUMNS))
            counts.append(
                _count_rows(steps, "step_trainer_landing:fate", F.col(jobs.FATE), F.col(jobs.COUNT))
            )
            reconciled.append(("step_trainer_landing", True))
        else:
            step_trainer_trusted = self._table(job)

        job = "machine_learning_curated"
        if job in selected:
            self.progress(job)
            ml = jobs.machine_learning_curated(
                step_trainer_trusted,
                accelerometer_trusted,
                customer_curated,
                salt=self.options.salt,
                tolerance_ms=self.options.tolerance_ms,
            )
            self._write(job, ml)

        for job in self.options.jobs:
            name = JOB_OUTPUT[job]
            written[name] = self.store.read_table(self.spark, name, self.state)
            counts.append(_count_rows(written[name], name, F.lit(ROWS)))

        self.progress("reconcile")
        sums = self._sum_counts(counts)
        reconciliation = {t: _reconcile(t, sums, weighted) for t, weighted in reconciled}
        rows = {name: sums.get((name, ROWS), (0, 0))[0] for name in written}
        for name, n in rows.items():
            self.state["tables"][name]["rows"] = n
        return reconciliation, rows

    def _sum_counts(self, frames: list[DataFrame]) -> dict[tuple[str, str], tuple[int, int]]:
        from functools import reduce

        from pyspark.sql import functions as F

        if not frames:
            return {}
        union = reduce(lambda a, b: a.unionByName(b), frames)
        result = union.groupBy("table", "key").agg(F.sum("landing").alias("landing"), F.sum("kept").alias("kept"))
        return {(r["table"], r["key"]): (int(r["landing"]), int(r["kept"])) for r in result.collect()}

    # --- the whole run ---------------------------------------------------------------------

    def run(self) -> RunResult:
        started = time.monotonic()
        log.info("run %s on %s (%s)", self.run_id, self.store.lake.url, self.options)
        if self.options.full_refresh:
            fresh = empty_state()
            fresh["tables"] = self.state["tables"]
            self.state = fresh
        try:
            self.stage()
            reconciliation, _rows = self.run_jobs()
        finally:
            for df in self._cached:
                df.unpersist()
        self.state["last_run"] = self.run_id
        self.state["options"] = {
            "consent": self.options.consent,
            "tolerance_ms": self.options.tolerance_ms,
            "format": self.options.format,
        }
        tables = {name: info.get("rows") for name, info in self.state["tables"].items()}
        record = {
            "run_id": self.run_id,
            "lake": self.store.lake.url,
            "options": {**self.state["options"], "full_refresh": self.options.full_refresh,
                        "jobs": list(self.options.jobs)},
            "new_landing_files": self.new_files,
            "reconciliation": reconciliation,
            "tables": tables,
            "seconds": round(time.monotonic() - started, 3),
        }
        self.progress("commit")
        self.store.commit(self.state)
        self.progress("done")
        record["step_seconds"] = self.timings
        key = self.store.save_run(self.run_id, record)
        for name, r in reconciliation.items():
            if not r["balanced"]:
                log.error("%s does not reconcile: %s", name, r)
        log.info("run %s committed in %.1fs; reconciliation in %s", self.run_id, record["seconds"], key)
        return RunResult(self.run_id, record, tables)


def run_pipeline(
    spark: SparkSession,
    lake_url: str,
    options: PipelineOptions | None = None,
    progress: Progress | None = None,
    after_job: Callable[[str], None] | None = None,
) -> RunResult:
    """Run the selected jobs on the lake at ``lake_url`` and commit the result atomically."""
    store = PipelineStore.open(lake_url)
    return PipelineRun(spark, store, options or PipelineOptions(), progress, after_job).run()


__all__ = ["JOB_ORDER", "PipelineRun", "RunResult", "run_pipeline"]
