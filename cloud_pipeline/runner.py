"""One pipeline run: stage new landing files, run the jobs, reconcile, commit atomically.

Incremental by construction: landing files are parsed once into ``_pipeline/staging/`` (Parquet)
and remembered in the state file; every run then rebuilds the trusted and curated tables from
the staged rows.  The result is therefore always the one a full run would give, consent changes
(a later record that withdraws consent) take effect on the next run, and only unseen files cost
JSON parsing.  A landing file that changed or vanished since it was staged makes its entity
re-stage from scratch (logged), as does ``--full-refresh``.

A job's table is rebuilt unless what it was built from is still what the job would read: the
staging batches of the entities it reads, the versions of the tables it reads, the options and the
salt (``TableVersion.inputs``; ``PipelineRun.up_to_date``).  So a run of some jobs never leaves
another job's table stale for good: any order-respecting sequence of single-job runs (the Glue
trigger chain, ``--jobs``) ends with the tables of one run of all jobs.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cloud_pipeline.config import CLASSIFIED_CUSTOMERS, JOB_ORDER, JOBS, JOBS_BY_NAME, Job, PipelineOptions
from cloud_pipeline.storage.s3_cache import open_store
from cloud_pipeline.storage.state import BuildOptions, PipelineState, RunRecord, TableInputs, TableVersion
from cloud_pipeline.storage.store import ENTITIES, PipelineStore
from cloud_pipeline.transforms import jobs, reconcile
from cloud_pipeline.transforms.landing import RULES, accepted, parse_landing, quarantined, warned
from cloud_pipeline.transforms.reconcile import Reconciliation
from cloud_pipeline.transforms.schemas import table_schema
from stedi.contract import QUARANTINE_FOLDER, TABLES_BY_NAME, WARNINGS_FOLDER

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(2)


@dataclass
class RunResult:
    run_id: str
    record: RunRecord
    tables: dict[str, int | None] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return all(r["balanced"] for r in self.record.reconciliation.values())


class PipelineRun:
    """The steps of one run; ``run()`` executes them in order."""

    def __init__(
        self,
        spark: SparkSession,
        store: PipelineStore,
        options: PipelineOptions,
        progress: Progress | None = None,
        after_job: Callable[[str], None] | None = None,
        keep_previous: bool = True,
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
        self.reconciliation: dict[str, Reconciliation] = {}
        #: Whether the commit keeps each rebuilt table's previous version until the next commit; an
        #: erasure's rebuild keeps none, or the erased customer's rows would outlive it.
        self.keep_previous = keep_previous
        #: Selected jobs whose tables this run kept because their inputs were unchanged.
        self.kept: list[str] = []

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
        """Parse unseen landing files of every entity into one new staging batch."""
        from functools import reduce

        parsed: list[tuple[str, DataFrame]] = []
        for entity in ENTITIES:
            table = TABLES_BY_NAME[f"{entity}_landing"]
            current = {o.key: o.etag for o in self.store.landing_files(entity)}
            seen: dict[str, str] = self.state.files[entity]
            stale = [k for k, etag in seen.items() if current.get(k) != etag]
            if self.options.full_refresh or stale:
                if stale and not self.options.full_refresh:
                    log.info("%s: %d landing file(s) changed or vanished; re-staging all", entity, len(stale))
                seen = {}
                self.state.files[entity] = seen
                self.state.staging[entity] = []
                self.state.quarantine[entity] = []
                self.state.warnings[entity] = []
                self.state.counts[entity] = {}
            todo = sorted(k for k in current if k not in seen)
            self.new_files[entity] = len(todo)
            if not todo:
                log.info("%s: no new landing files", entity)
                continue
            lines = self.store.read_landing_lines(self.spark, todo)
            parsed.append((entity, parse_landing(lines, table, self.run_id, self.store.landing_key())))
            self.state.staging[entity].append(self.run_id)
            seen.update({k: current[k] for k in todo})
            log.info("%s: staging %d new landing file(s) as batch %s", entity, len(todo), self.run_id)
        if not parsed:
            return
        self.progress("stage new landing files")
        counts = {}
        for entity, rows in parsed:
            # One write per entity: a union would give every entity's files the others' columns.
            observed_rows, observed = reconcile.observe(rows, f"staging {entity}", reconcile.staging_metrics())
            writer = observed_rows.write.mode("overwrite")
            # Parquet tries a dictionary for every column and falls back to plain values when a
            # page's dictionary grows too large: readings' doubles nearly always do, and trying
            # cost 6.5% of the staging's CPU in a profile at 10x.  (A column-specific parquet-mr
            # setting, ``parquet.enable.dictionary#<column>``, read by ParquetOutputFormat.)
            for f in TABLES_BY_NAME[f"{entity}_landing"].fields:
                if f.type == "double":
                    writer = writer.option(f"parquet.enable.dictionary#{f.name}", "false")
            writer.parquet(self.store.staging_path(entity, self.run_id))
            counts[entity] = reconcile.staging_counts(observed.get)
            self.state.counts[entity][self.run_id] = counts[entity]
        # Only entities with rejected lines get a quarantine batch, and only those with warned lines
        # a warnings batch: clean data costs no extra write.
        dirty = [e for e, n in counts.items() if sum(n.get(r, 0) for r in RULES)]
        warned_entities = [e for e, n in counts.items() if n.get(reconcile.WARNED, 0)]
        for step, entities, folder, select, listed in (
            ("quarantine", dirty, QUARANTINE_FOLDER, quarantined, self.state.quarantine),
            ("warnings", warned_entities, WARNINGS_FOLDER, warned, self.state.warnings),
        ):
            if not entities:
                continue
            self.progress(step)
            frames = []
            for entity in entities:
                staged = self.store.read_staging(self.spark, entity, [self.run_id])
                if staged is not None:
                    frames.append(select(staged, TABLES_BY_NAME[f"{entity}_landing"]))
            union = reduce(lambda a, b: a.unionByName(b), frames)
            union.write.mode("overwrite").partitionBy("table").parquet(self.store.batch_path(folder, self.run_id))
            for entity in entities:
                listed[entity].append(self.run_id)

    def staged_counts(self, entity: str) -> dict[str, dict[str, int]]:
        """Rows per rule of each staging batch of an entity, as stored when each batch was staged.

        Lakes staged before counts were kept in the state get them counted once, here.
        """
        from pyspark.sql import functions as F

        known = self.state.counts[entity]
        missing = [b for b in self.state.staging[entity] if b not in known]
        staged = self.store.read_staging(self.spark, entity, missing) if missing else None
        if staged is not None:
            log.info("%s: counting %d staging batch(es) staged before counts were kept", entity, len(missing))
            key = F.coalesce(F.col("_rule"), F.lit(reconcile.ACCEPTED))
            for row in staged.groupBy("_run", key.alias("key")).count().collect():
                known.setdefault(row["_run"], {})[row["key"]] = int(row["count"])
        return {b: known.get(b, {}) for b in self.state.staging[entity]}

    def landing(self, entity: str) -> DataFrame:
        table = TABLES_BY_NAME[f"{entity}_landing"]
        staged = self.store.read_staging(self.spark, entity, self.state.staging[entity])
        if staged is None:
            return self.spark.createDataFrame([], table_schema(table))
        return accepted(staged, table)

    # --- jobs ------------------------------------------------------------------------------

    def _cache(self, df: DataFrame) -> DataFrame:
        df = df.cache()
        self._cached.append(df)
        return df

    def _write(self, job: Job, df: DataFrame) -> DataFrame:
        """Write a job's table as a new version, counting its rows on the way; returns it read back."""
        counted, rows = reconcile.observe(df, f"rows of {job.output}", reconcile.rows_metric())
        inputs = self.inputs_of(job)  # before the write: the versions it read, not its own
        version = self.store.write_table(counted, job.output, self.run_id, self.options.format)
        replaced = self.previous.tables.get(job.output)
        self.state.tables[job.output] = TableVersion(
            version=version,
            format=self.options.format,
            run_id=self.run_id,
            rows=int(rows.get[reconcile.ROWS]),
            # What the table was built with: a later run with nothing new may keep it only if
            # these are still the same (``unchanged_since``).
            options=self._build_options(),
            salt_fingerprint=salt_fingerprint(self.options.salt),
            inputs=inputs,
            previous=replaced.version if replaced is not None and self.keep_previous else None,
        )
        self.after_job(job.name)
        # Later jobs read the written files: cheaper than recomputing the lineage that made them.
        return self.store.read_table(self.spark, job.output, self.state)

    def _write_classified(self, job: Job, landing: str, classified: DataFrame) -> DataFrame:
        """Write a landing job's trusted rows, counting every row's fate in the same pass."""
        observed, fates = reconcile.observe(classified, f"fates of {job.name}", reconcile.fate_metrics(job.weighted))
        written = self._write(job, jobs.trusted_rows(observed, job.columns))
        self.reconciliation[landing] = reconcile.reconcile(
            self.staged_counts(TABLES_BY_NAME[landing].entity), fates.get, job.weighted
        )
        return written

    def _table(self, job: Job) -> DataFrame:
        """The output of a job that is not part of this run: its current version."""
        return self.store.read_table(self.spark, job.output, self.state)

    def _input(self, name: str, frames: dict[str, DataFrame]) -> DataFrame:
        """A job's input: a table an earlier job wrote in this run (or ``CLASSIFIED_CUSTOMERS``),
        a landing table, or the current version of a table no job of this run wrote."""
        if name in frames:
            return frames[name]
        table = TABLES_BY_NAME[name]
        if table.zone != "landing":
            return self._table(_WRITER[name])
        return self.landing(table.entity)

    def inputs_of(self, job: Job) -> TableInputs:
        """What ``job`` reads now: the staging batches of its entities, the versions of its tables."""
        entities = sorted({_ENTITY_READ[name] for name in job.inputs if name in _ENTITY_READ})
        tables = {name: t.version for name in job.inputs if (t := self.state.tables.get(name)) is not None}
        return TableInputs({e: tuple(self.state.staging[e]) for e in entities}, tables)

    def up_to_date(self, job: Job) -> bool:
        """Whether ``job``'s table is what the job would build now, so that this run may keep it.

        It is when it was built from the same staging batches and table versions (``inputs_of``),
        with the same options, format and salt, and (a landing job) its reconciliation is kept.
        The salt and every option count for every table: cheap to compare, and no rule to forget.
        """
        if self.options.full_refresh:
            return False
        built = self.state.tables.get(job.output)
        return (
            built is not None
            and (built.format, built.options, built.salt_fingerprint)
            == (self.options.format, self._build_options(), salt_fingerprint(self.options.salt))
            and built.inputs == self.inputs_of(job)
            and (job.reconciles is None or job.reconciles in (self.state.reconciliation or {}))
        )

    def run_jobs(self) -> dict[str, Reconciliation]:
        """Run the selected jobs in order; returns the reconciliation of the landing jobs that ran.

        Each job's table is written once, and every count the reconciliation and the summary
        need is observed while it is written: no job's data is scanned twice for counting.
        """
        selected = set(self.options.jobs)
        # Every landing job needs each customer's latest record (classified lazily: only a job that
        # runs computes it).  A table no job of this run writes is read when a job needs it.
        frames = {CLASSIFIED_CUSTOMERS: self._cache(jobs.classify_customers(self.landing("customer")))}
        for job in JOBS:
            if job.name not in selected:
                continue
            if self.up_to_date(job):
                log.info("%s: its inputs are unchanged since run %s; %s stays", job.name,
                         self.state.tables[job.output].run_id, job.output)
                self.kept.append(job.name)
                continue
            self.progress(job.name)
            built = job.build([self._input(name, frames) for name in job.inputs], self.options)
            if job.reconciles is None:
                frames[job.output] = self._write(job, built)
            else:
                frames[job.output] = self._write_classified(job, job.reconciles, built)
        return self.reconciliation

    # --- the whole run ---------------------------------------------------------------------

    def _build_options(self) -> BuildOptions:
        return BuildOptions(self.options.consent, self.options.tolerance_ms, self.options.format)

    def unchanged_since(self) -> str | None:
        """The previous run, when it left exactly the tables this run would write; else None.

        That is: no landing file is new, changed or gone (nothing was staged), and every table of
        the selected jobs is up to date (``up_to_date``).  Then the run commits nothing: rebuilding
        would only write the same rows again (and upload them, on an S3 lake).  A run that staged
        something commits even when it keeps every table: the other jobs read what it staged.
        """
        before = self.previous
        if self.options.full_refresh or before.last_run is None or any(self.new_files.values()):
            return None
        if self.state.staging != before.staging:  # an entity whose every landing file is gone
            return None
        same = all(self.up_to_date(JOBS_BY_NAME[j]) for j in self.options.jobs)
        return before.last_run if same else None

    def _record(self, started: float, reconciliation: dict[str, Reconciliation], tables: dict[str, int | None],
                unchanged_since: str | None = None) -> RunRecord:
        return RunRecord(
            run_id=self.run_id,
            lake=self.store.lake.url,
            options=self._build_options(),
            full_refresh=self.options.full_refresh,
            jobs=self.options.jobs,
            new_landing_files=self.new_files,
            reconciliation=reconciliation,
            tables=tables,
            seconds=round(time.monotonic() - started, 3),
            unchanged_since=unchanged_since,
            kept=tuple(self.kept) if unchanged_since is None else (),
        )

    def _keep(self, since: str, started: float) -> RunRecord:
        """Finish a run that found nothing to do: the tables stay, the record says why."""
        log.info("nothing new since run %s (no new or changed landing files, same options and salt): "
                 "every table stays as that run left it", since)
        wanted = {JOBS_BY_NAME[j].output for j in self.options.jobs}
        kept = self.previous.reconciliation or {}
        tables = {name: t.rows for name, t in self.previous.tables.items() if name in wanted}
        return self._record(started, {t: kept[t] for t in _landing_tables(self.options.jobs)}, tables, since)

    def _commit(self, reconciliation: dict[str, Reconciliation], started: float) -> RunRecord:
        """Finish a run that built tables: commit the new state."""
        self.state.last_run = self.run_id
        self.state.options = self._build_options()
        # Kept in the state so that a run with nothing new can report it without rebuilding.
        self.state.reconciliation = {**(self.state.reconciliation or {}), **reconciliation}
        if not self.keep_previous:
            self.state.tables = {name: replace(t, previous=None) for name, t in self.state.tables.items()}
        record = self._record(started, reconciliation, {name: t.rows for name, t in self.state.tables.items()})
        self.progress("commit")
        self.store.commit(self.state)
        return record

    def run(self) -> RunResult:
        started = time.monotonic()
        log.info("run %s on %s (%s)", self.run_id, self.store.lake.url, self.options)
        if self.options.full_refresh:
            self.state = PipelineState(tables=self.state.tables)
        try:
            self.stage()
            since = self.unchanged_since()
            reconciliation = self.run_jobs() if since is None else {}
        finally:
            for df in self._cached:
                df.unpersist()
        record = self._commit(reconciliation, started) if since is None else self._keep(since, started)
        self.progress("done")
        record.step_seconds = self.timings
        key = self.store.save_run(record)
        if since is None:
            for name, r in reconciliation.items():
                if not r["balanced"]:
                    log.error("%s does not reconcile: %s", name, r)
            log.info("run %s committed in %.1fs; reconciliation in %s", self.run_id, record.seconds, key)
        return RunResult(self.run_id, record, record.tables)


#: The job that writes each trusted or curated table.
_WRITER = {job.output: job for job in JOBS}
#: The entity whose staging batches an input is made of.
_ENTITY_READ = {CLASSIFIED_CUSTOMERS: "customer"} | {
    name: TABLES_BY_NAME[name].entity for job in JOBS for name in job.inputs
    if name in TABLES_BY_NAME and TABLES_BY_NAME[name].zone == "landing"
}


def _landing_tables(job_names: tuple[str, ...]) -> list[str]:
    """The landing table each landing job among ``job_names`` reads and reconciles."""
    return [t for j in job_names if (t := JOBS_BY_NAME[j].reconciles) is not None]


def salt_fingerprint(salt: str) -> str:
    """Tells whether the salt changed without storing it: HMAC-SHA256 keyed with the salt.

    It lets no one learn more about the salt than the ML table's own keys (SHA-256 of salt and a
    known email) already do.
    """
    return hmac.new(salt.encode(), b"stedi customerKey salt fingerprint", hashlib.sha256).hexdigest()


def run_pipeline(
    spark: SparkSession,
    lake_url: str,
    options: PipelineOptions | None = None,
    progress: Progress | None = None,
    after_job: Callable[[str], None] | None = None,
    keep_previous: bool = True,
) -> RunResult:
    """Run the selected jobs on the lake at ``lake_url`` and commit the result atomically."""
    store = open_store(lake_url)
    return PipelineRun(spark, store, options or PipelineOptions(), progress, after_job, keep_previous).run()


__all__ = ["JOB_ORDER", "PipelineRun", "RunResult", "run_pipeline"]
