"""One pipeline run: stage new landing files, run the jobs, reconcile, commit atomically.

Landing files are parsed once into ``_pipeline/staging/`` (Parquet) and remembered in the state
file; only unseen files cost JSON parsing.  A landing file that changed or vanished since it was
staged makes its entity re-stage from scratch (logged), as does ``--full-refresh``.

Incremental by construction, with the full rebuild as the fallback (``_plan_append``; the owners
a run affects are named in ``cloud_pipeline/transforms/incremental.py``):

- no owner affected: the reading tables get only the batch's new rows, appended to a new version
  that links the previous version's files (``PipelineStore.append_table``);
- some customers' consent or serial number changed (or a new customer's readings were held back,
  or new readings could pair with old steps): each reading table with affected owners is written
  again from its previous rows of the other owners, the affected owners' rows classified again
  from all their staged rows, and the batch's rows of the other owners (``_rewrite_classified``);
- otherwise (options changed, too many changed customers, ...) every table is rebuilt from all
  staged rows, and the log says why.

The customer tables are recomputed on the first two paths (customer-sized).  All three give
exactly a full refresh's tables and reconciliation; the run record says which path each table
took (``RunRecord.paths``).  JSON tables, the cluster store and runs of some jobs always rebuild.

A job's table is written (rebuilt or appended to) unless what it was built from is still what the job would read: the
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
from functools import reduce
from typing import TYPE_CHECKING, Any

from cloud_pipeline.config import CLASSIFIED_CUSTOMERS, JOB_ORDER, JOBS, JOBS_BY_NAME, Job, PipelineOptions
from cloud_pipeline.session import compiled_for_lake
from cloud_pipeline.storage.s3_cache import open_store
from cloud_pipeline.storage.state import (
    BuildOptions,
    HeldBackIndex,
    PipelineState,
    RunRecord,
    TableInputs,
    TableVersion,
)
from cloud_pipeline.storage.store import ENTITIES, MAX_APPENDED_FILES, PipelineStore, changed_or_vanished
from cloud_pipeline.transforms import incremental, jobs, reconcile
from cloud_pipeline.transforms.landing import RULES, accepted, parse_landing, quarantined, warned
from cloud_pipeline.transforms.reconcile import Reconciliation
from cloud_pipeline.transforms.schemas import table_schema
from stedi.contract import QUARANTINE_FOLDER, TABLES_BY_NAME, WARNINGS_FOLDER

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, Observation, SparkSession

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


#: New landing data below this size is staged with the entities' writes at the same time
#: (``PipelineRun._write_staging``): a daily delivery, not a lake's first load.
CONCURRENT_STAGING_MAX_BYTES = 64 * 1024 * 1024


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
        #: The size of every landing file, as ``stage`` listed them (``compiled_for_lake``).
        self.landing_size = 0
        self._cached: list[DataFrame] = []
        self.reconciliation: dict[str, Reconciliation] = {}
        #: Whether the commit keeps each rebuilt table's previous version until the next commit; an
        #: erasure's rebuild keeps none, or the erased customer's rows would outlive it.
        self.keep_previous = keep_previous
        #: Selected jobs whose tables this run kept because their inputs were unchanged.
        self.kept: list[str] = []
        #: Per table this run wrote or kept, how: "append", "rewrite: <whose rows>", "recomputed
        #: (customer-sized)", "kept" or "rebuild: <why>" (kept in the run record).
        self.paths: dict[str, str] = {}
        #: The incremental plan (append or rewrite), when this run takes one (``_plan_append``).
        self.plan: AppendPlan | None = None
        #: Per appended table, its new rows only (the ML job pairs the new step readings).
        self.new_rows: dict[str, DataFrame | None] = {}
        #: Per landing job that classified in this run, the owners of the rows it held back
        #: (``HeldBackIndex``); None: unknown.
        self.held_back: dict[str, set[str] | None] = {}

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
        parsed: list[tuple[str, DataFrame]] = []
        new_bytes = 0
        for entity in ENTITIES:
            table = TABLES_BY_NAME[f"{entity}_landing"]
            objects = self.store.landing_files(entity)
            self.landing_size += sum(o.size for o in objects)
            current = {o.key: o.etag for o in objects}
            seen: dict[str, str] = self.state.files[entity]
            stale = changed_or_vanished(seen, objects)
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
            new_bytes += sum(o.size for o in objects if o.key not in seen)
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
        counts = dict(self._write_staging(parsed, concurrently=new_bytes < CONCURRENT_STAGING_MAX_BYTES))
        for entity, _ in parsed:
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

    def _write_staging(self, parsed: list[tuple[str, DataFrame]], concurrently: bool) -> list[tuple[str, dict[str, int]]]:
        """Write each entity's parsed lines as its staging batch; its counts per rule, observed on the way.

        A small delivery's writes run at the same time, one thread each: each is a Spark job of
        one task over a few files, whose cost is the driver's planning and the job's fixed steps,
        which one job's planning can overlap with another's task.  A large one's run one after
        another, so that only one entity's Parquet writers hold their buffers in the heap.
        """

        def write(entity: str, rows: DataFrame) -> tuple[str, dict[str, int]]:
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
            return entity, reconcile.staging_counts(observed.get)

        if not concurrently or len(parsed) < 2:
            return [write(entity, rows) for entity, rows in parsed]
        from concurrent.futures import ThreadPoolExecutor

        # PySpark runs each Python thread's calls in a JVM thread of its own (pinned thread mode,
        # the default since Spark 3.2), so the jobs and their observations stay apart.
        with ThreadPoolExecutor(max_workers=len(parsed), thread_name_prefix="staging") as pool:
            return list(pool.map(lambda item: write(*item), parsed))

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
        self._new_version(job, version, int(rows.get[reconcile.ROWS]), inputs)
        # Later jobs read the written files: cheaper than recomputing the lineage that made them.
        return self.store.read_table(self.spark, job.output, self.state)

    def _new_version(self, job: Job, version: str, rows: int, inputs: TableInputs) -> None:
        """Name a written version of a job's table in the (uncommitted) state."""
        replaced = self.previous.tables.get(job.output)
        self.state.tables[job.output] = TableVersion(
            version=version,
            format=self.options.format,
            run_id=self.run_id,
            rows=rows,
            # What the table was built with: a later run with nothing new may keep it only if
            # these are still the same (``unchanged_since``).
            options=self._build_options(),
            salt_fingerprint=salt_fingerprint(self.options.salt),
            inputs=inputs,
            previous=replaced.version if replaced is not None and self.keep_previous else None,
        )
        self.after_job(job.name)

    def _write_classified(self, job: Job, landing: str, classified: DataFrame) -> DataFrame:
        """Write a landing job's trusted rows, counting every row's fate in the same pass."""
        metrics = reconcile.fate_metrics(job.weighted) + self._held_back_metric(job)
        observed, fates = reconcile.observe(classified, f"fates of {job.name}", metrics)
        written = self._write(job, jobs.trusted_rows(observed, job.columns))
        self._note_held_back(job, fates.get, replace_previous=True)
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

    def inputs_of(self, job: Job, state: PipelineState | None = None) -> TableInputs:
        """What ``job`` reads now (or in ``state``): the staging batches of its entities, the
        versions of its tables."""
        state = state or self.state
        entities = sorted({_ENTITY_READ[name] for name in job.inputs if name in _ENTITY_READ})
        tables = {name: t.version for name in job.inputs if (t := state.tables.get(name)) is not None}
        return TableInputs({e: tuple(state.staging[e]) for e in entities}, tables)

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
        from pyspark.sql import functions as F

        selected = set(self.options.jobs)
        # Every landing job needs each customer's latest record (classified lazily: only a job that
        # runs computes it).  A table no job of this run writes is read when a job needs it.
        frames = {CLASSIFIED_CUSTOMERS: self._cache(jobs.classify_customers(self.landing("customer")))}
        self.progress("append or rebuild")
        self.plan, why = self._plan_append(frames[CLASSIFIED_CUSTOMERS])
        for job in JOBS:
            if job.name not in selected:
                continue
            if self.up_to_date(job):
                log.info("%s: its inputs are unchanged since run %s; %s stays", job.name,
                         self.state.tables[job.output].run_id, job.output)
                self.kept.append(job.name)
                self.paths[job.output] = "kept"
                continue
            self.progress(job.name)
            if self.plan is not None and job.output in _APPENDED:
                frames[job.output] = self._append(job, self.plan, frames)
                continue
            inputs = [self._input(name, frames) for name in job.inputs]
            if self.plan is not None and job.name == "customer_trusted_to_curated":
                # The users with accelerometer rows: the curated customers before this run (condition
                # 1 kept every one of them trusted) and the new batch's trusted users; no table scan.
                # Customer-sized both: a broadcast semi-join, no shuffle (the job's own distinct
                # and join are sized for the whole accelerometer table).
                built = jobs.customers_among(inputs[0], F.broadcast(self.plan.users))
            else:
                built = job.build(inputs, self.options)
            if job.reconciles is None:
                frames[job.output] = self._write(job, built)
            else:
                frames[job.output] = self._write_classified(job, job.reconciles, built)
            self.paths[job.output] = "recomputed (customer-sized)" if self.plan is not None else f"rebuild: {why}"
        return self.reconciliation

    # --- the append path -------------------------------------------------------------------

    def _append_precondition(self) -> str | None:
        """Why this run cannot append whatever its new data (condition 4 and the store), or None."""
        before, options = self.previous, self.options
        if options.full_refresh:
            return "--full-refresh"
        if set(options.jobs) != set(JOB_ORDER):
            return "only some jobs run (--jobs): the append path runs all five"
        if options.format != "parquet":
            return "JSON tables (--format json) are always rebuilt"
        if not self.store.appends:
            return "the cluster store (Spark writing s3a:// directly) always rebuilds"
        if before.last_run is None:
            return "no earlier run"
        for entity in ENTITIES:
            if self.state.staging[entity] not in (before.staging[entity], [*before.staging[entity], self.run_id]):
                return f"{entity} landing files changed or vanished and were re-staged"
        wanted = (options.format, self._build_options(), salt_fingerprint(options.salt))
        for job in JOBS:
            table = before.tables.get(job.output)
            if table is None or table.inputs is None:
                return f"{job.output} has no recorded build"
            if (table.format, table.options, table.salt_fingerprint) != wanted:
                return f"{job.output} was built with other options or another salt"
            if table.inputs != self.inputs_of(job, before):
                return f"{job.output} was not built from every earlier batch (a run of some jobs)"
            if job.output in _APPENDED:
                try:
                    files = len(self.store.data_files(job.output, table.version))
                except FileNotFoundError:
                    return f"{job.output}'s version {table.version} is not on this disk"
                if files >= MAX_APPENDED_FILES:
                    return f"{job.output} has {files} files (at most {MAX_APPENDED_FILES}): compacting"
        kept = before.reconciliation or {}
        for job in JOBS:
            if job.reconciles is not None and reconcile.COERCED not in kept.get(job.reconciles, {}):
                return f"no reconciliation of {job.reconciles} kept from the earlier run"
        return None

    def _plan_append(self, classified_customers: DataFrame) -> tuple[AppendPlan | None, str]:
        """The plan of an incremental run: which owners' rows it recomputes (none: a plain append);
        None and why (logged) when it rebuilds.  Decided on customer-sized data
        (``transforms/incremental.py``) and on the affected owners' rows only."""
        from pyspark.sql import functions as F

        why = self._append_precondition()
        if why is not None:
            log.info("rebuilding every table: %s", why)
            return None, why
        held = self.store.read_held_back(self.previous)
        if held is None:
            why = "no held-back index of the earlier run"
            log.info("rebuilding every table: %s", why)
            return None, why
        before, latest = self.previous, jobs.latest_customers(classified_customers)
        latest_before = latest
        # The owner records of this run's customer batch, before and after it: only its customers'
        # can change, new or gone (batch-sized, collected).
        batch_before: dict[str | None, incremental.Owner] = {}
        batch_after: dict[str | None, incremental.Owner] = {}
        if self.run_id in self.state.staging["customer"]:
            staged = self.store.read_staging(self.spark, "customer", before.staging["customer"])
            records = self.store.read_staging(self.spark, "customer", [self.run_id])
            table = TABLES_BY_NAME["customer_landing"]
            if staged is None:  # the first customer records: before them every reading's owner was unknown
                latest_before = latest.limit(0)
                batch_before, batch_after = incremental.batch_owners(latest_before, latest)
            elif records is not None:  # (None: the batch's files hold no line, so no record changed)
                every_before, theirs_before, theirs_after = incremental.latest_before_batch(
                    latest, accepted(staged, table), accepted(records, table))
                # The batch's customers before it are read from every earlier batch: cached, so
                # that batch_owners reads them once and every use of latest_before after it (the
                # recomputed owners' previous classification) joins the cached rows.
                latest_before = self._cache(every_before)
                batch_before, batch_after = incremental.batch_owners(self._cache(theirs_before), theirs_after)
        was, now = incremental.moved(batch_before, batch_after)
        users_changed = incremental.changed_customers(was, now, held.users)
        if None in users_changed:
            why = "a customer record without an email changed"
            log.info("rebuilding every table: %s", why)
            return None, why
        changed = sorted(e for e in users_changed if e is not None)
        limit = REWRITE_MIN_OWNERS if len(changed) <= REWRITE_MIN_OWNERS else \
            max(REWRITE_MIN_OWNERS, latest.count() // REWRITE_SHARE)
        if len(changed) > limit:
            why = f"{len(changed)} customers' consent or serial number changed (more than {limit}): rebuilding"
            log.info("rebuilding every table: %s", why)
            return None, why
        # Customer-sized, and asked three to five times (which customers or serials it holds): cached.
        curated_table = self._cache(self.store.read_table(self.spark, "customer_curated", before))
        consent = self.options.consent
        batch = None
        first_reading: dict[str, int] = {}
        readers_owners: dict[str | None, incremental.Owner] = {}
        if self.run_id in self.state.staging["accelerometer"]:
            readings = self.store.read_staging(self.spark, "accelerometer", [self.run_id])
            if readings is not None:
                classified = jobs.classify_accelerometer(
                    _owned_by(accepted(readings, TABLES_BY_NAME["accelerometer_landing"]), "user", changed, False),
                    latest, consent)
                # Copies of readings already kept pair as those do: only the really new ones count.
                # Every row of accelerometer_trusted is a curated customer's (customer_curated is its users).
                batch = self._without_copies(JOBS_BY_NAME["accelerometer_landing_to_trusted"], classified,
                                             "timestamp", "user",
                                             lambda users: _curated_among(curated_table, "email", users) - set(changed))
                trusted = batch.filter(F.col(jobs.FATE) == jobs.TRUSTED)
                # With each reader's owner record (the same before and after unless it changed).
                owner = latest.select(F.col("email").alias("user"), "serialNumber", "shareWithResearchAsOfDate")
                first = trusted.groupBy("user").agg(F.min("timestamp").alias("first")).join(owner, "user", "left")
                for r in first.collect():
                    first_reading[r["user"]] = r["first"]
                    readers_owners[r["user"]] = incremental.Owner(r["serialNumber"], r["shareWithResearchAsOfDate"])
        readings_rewrite = self._recompute_plan("accelerometer", "user", changed, latest, latest_before)
        # Whose inputs this run moves: the changed customers and the new readings' owners (an
        # unchanged one's record is the same before and after), then every owner of their serial
        # numbers, before and after (a serial's step rows depend on all its owners).  No other
        # customer's consent, serial or curated state changes, so no other serial's inputs do.
        unchanged = {u: o for u, o in readers_owners.items() if u not in now and u not in was}
        touched = {o.serial for o in (*was.values(), *now.values(), *unchanged.values()) if o.serial is not None}
        members_after = incremental.owners_among(latest, touched)
        members_before = incremental.owners_before(members_after, batch_before, set(batch_after), touched)
        owners_before = {**members_before, **unchanged, **was}
        owners_after = {**members_after, **unchanged, **now}
        emails = sorted(e for e in {*owners_before, *owners_after} if e is not None)
        curated_before = _curated_among(curated_table, "email", emails)
        readers = set(first_reading) | readings_rewrite.trusted_owners
        curated_after = incremental.curated_after(owners_after, curated_before, users_changed, readers)
        serials = sorted(incremental.changed_serials(owners_before, owners_after, curated_before, curated_after,
                                                     held.serials))
        # The ML rows of every serial whose steps or curated owners' readings change are paired again.
        customers_serials = {o.serial for e in changed for o in (was.get(e), now.get(e))
                             if o is not None and o.serial is not None}
        ml_serials = set(serials) | customers_serials
        if first_reading:
            steps_of = sorted({o.serial for u in first_reading if (o := owners_after.get(u)) and o.serial is not None})
            steps = self.store.read_table(self.spark, "step_trainer_trusted", before)
            # Two columns of the step table, filtered on the readers' serials: Parquet prunes the rest.
            last = (steps.select("serialNumber", "sensorReadingTime").filter(incremental.among("serialNumber", steps_of))
                    .groupBy("serialNumber").agg(F.max("sensorReadingTime").alias("last")).collect())
            ml_serials |= incremental.pairing_conflicts(first_reading, {r["serialNumber"]: r["last"] for r in last},
                                                        owners_after, self.options.tolerance_ms)
        # The held-back index: the earlier owners, less the recomputed ones (their part is observed
        # again), plus the batch's (``_note_held_back``).
        self.held_back = {"accelerometer_landing_to_trusted": set(held.users) - set(changed),
                          "step_trainer_landing_to_trusted": set(held.serials) - set(serials)}
        # Every user with trusted accelerometer rows after this run: customer_curated's emails
        # before it, less the recomputed customers, plus the readers (customer-sized, kept in Spark).
        users = curated_table.select(F.col("email").alias("user")).filter(~incremental.among("user", changed))
        if readers:
            users = users.unionByName(incremental.strings(self.spark, "user", readers))
        rewrite = None
        if changed or serials or ml_serials:
            kinds = incremental.change_kinds(was, now, changed)
            whose = "customer's" if len(changed) == 1 else "customers'"
            parts = [f"{len(changed)} {whose} rows ({', '.join(kinds)})"] if changed else []
            if serials:
                parts.append(f"{len(serials)} serial number(s)' step rows (their owners changed)")
            if ml_serials - set(serials) - customers_serials:
                parts.append("the ML rows new readings may pair with")
            rewrite = RewritePlan(
                users=readings_rewrite, ml_serials=frozenset(ml_serials), describe="; ".join(parts),
                serials=self._recompute_plan("step_trainer", "serialNumber", serials, latest, latest_before),
                latest_before=latest_before, curated_before=curated_table, ml_owners=frozenset(
                    e for e in curated_after if (o := owners_after.get(e)) is not None and o.serial in ml_serials))
            log.info("rewriting %s; appending the rest (customers: %s)", rewrite.describe,
                     ", ".join(incremental.masked(e) for e in changed) or "none")
        else:
            log.info("appending: the new data changes no row already in a table")
        return AppendPlan(users=users, accelerometer_batch=batch, latest=latest, curated_before=curated_table,
                          rewrite=rewrite), ""

    def _recompute_plan(self, entity: str, owner: str, owners: list[str], latest: DataFrame,
                        latest_before: DataFrame) -> OwnersRewrite:
        """The rows of ``owners`` in every staging batch of ``entity``, to classify again.

        Read with a filter on the owner column (Parquet reads that one column of the other rows)
        and cached: classified twice, as the previous run did (its counts come out of the
        reconciliation) and as a full refresh would now.  The accelerometer rows are classified
        now, in the plan, to learn which of those customers keep trusted readings (curated).
        """
        from pyspark.sql import functions as F

        if not owners:
            return OwnersRewrite(frozenset(), None, None, frozenset())
        table = TABLES_BY_NAME[f"{entity}_landing"]
        earlier = self.store.read_staging(self.spark, entity, self.previous.staging[entity])
        new = self.store.read_staging(self.spark, entity, [self.run_id]) \
            if self.run_id in self.state.staging[entity] else None
        old_rows = None if earlier is None else self._cache(_owned_by(accepted(earlier, table), owner, owners, True))
        new_rows = None if new is None else _owned_by(accepted(new, table), owner, owners, True)
        mine = [f for f in (old_rows, new_rows) if f is not None]
        every = None if not mine else mine[0] if len(mine) == 1 else mine[0].unionByName(mine[1])
        rewrite = OwnersRewrite(frozenset(owners), old_rows, every, frozenset())
        if entity == "accelerometer" and every is not None:
            now = self._cache(jobs.classify_accelerometer(every, latest, self.options.consent))
            found = now.filter(F.col(jobs.FATE) == jobs.TRUSTED).select("user").distinct().collect()
            rewrite = replace(rewrite, classified=now, trusted_owners=frozenset(r["user"] for r in found),
                              previously=None if old_rows is None else
                              jobs.classify_accelerometer(old_rows, latest_before, self.options.consent))
        return rewrite

    def _append(self, job: Job, plan: AppendPlan, frames: dict[str, DataFrame]) -> DataFrame:
        """Append a job's new rows to its table, or (``plan.rewrite``) write a new version of it
        whose recomputed owners' rows are classified again from staging; returns the new version."""
        from pyspark.sql import functions as F

        latest = jobs.latest_customers(frames[CLASSIFIED_CUSTOMERS])
        rewrite = plan.rewrite
        # A table none of whose owners is recomputed is appended to, even on a rewriting run.
        if rewrite is not None and not {"accelerometer_trusted": rewrite.users.owners,
                                         "step_trainer_trusted": rewrite.serials.owners,
                                         "machine_learning_curated": rewrite.ml_serials}[job.output]:
            rewrite = None
        self.paths[job.output] = "append" if rewrite is None else f"rewrite: {rewrite.describe}"
        if job.name == "accelerometer_landing_to_trusted":
            if rewrite is None:
                self._append_classified(job, plan.accelerometer_batch)
            else:
                readers = rewrite.users
                self._rewrite_classified(job, "user", readers.owners, plan.accelerometer_batch, readers.classified,
                                         readers.previously)
        elif job.name == "step_trainer_landing_to_trusted":
            curated = self._input("customer_curated", frames)
            serials = sorted(rewrite.serials.owners) if rewrite is not None else []
            steps = self.store.read_staging(self.spark, "step_trainer", [self.run_id]) \
                if self.run_id in self.state.staging["step_trainer"] else None
            classified = None if steps is None else jobs.classify_step_trainer(
                _owned_by(accepted(steps, TABLES_BY_NAME["step_trainer_landing"]), "serialNumber", serials, False),
                latest, curated, self.options.consent)
            marked = None if classified is None else self._without_copies(
                job, classified, "sensorReadingTime", "serialNumber",
                # A trusted step reading's serial had a curated owner when it was classified.
                lambda found: _curated_among(plan.curated_before, "serialNumber", found) - set(serials))
            if rewrite is None:
                self._append_classified(job, marked)
            else:
                again = rewrite.serials
                now = None if again.rows is None else jobs.classify_step_trainer(
                    again.rows, latest, curated, self.options.consent)
                previously = None if again.earlier_rows is None else jobs.classify_step_trainer(
                    again.earlier_rows, rewrite.latest_before, rewrite.curated_before, self.options.consent)
                self._rewrite_classified(job, "serialNumber", again.owners, marked, now, previously)
                self.new_rows[job.output] = None if marked is None else jobs.trusted_rows(marked, job.columns)
        else:  # the ML table: the new step readings, paired with every reading of their owners near them
            new_steps = self.new_rows.get("step_trainer_trusted")
            if rewrite is not None and new_steps is not None:
                new_steps = _owned_by(new_steps, "serialNumber", sorted(rewrite.ml_serials), False)
            spans = [] if new_steps is None else new_steps.groupBy("serialNumber").agg(
                F.min("sensorReadingTime").alias("first"), F.max("sensorReadingTime").alias("last")).collect()
            built = None
            tolerance = self.options.tolerance_ms
            if spans and new_steps is not None:
                serials_seen = {r["serialNumber"] for r in spans}
                # The readings of the customers who own those serials (a superset of their curated
                # owners), near the new steps' times: the rest of the table never reaches the join.
                users = sorted(e for e in incremental.owners_among(plan.latest, serials_seen) if e is not None)
                first, last = min(r["first"] for r in spans), max(r["last"] for r in spans)
                readings = self._input("accelerometer_trusted", frames).filter(
                    F.col("timestamp").between(first - tolerance, last + tolerance) & incremental.among("user", users))
                built = jobs.machine_learning_curated(new_steps, readings, self._input("customer_curated", frames),
                                                      salt=self.options.salt, tolerance_ms=tolerance)
            if rewrite is None:
                self._append_rows(job, built)
            else:
                # The recomputed serials' rows: their steps paired again with their curated owners'
                # readings, as a full refresh pairs them; every other row stays.
                ml_serials = sorted(rewrite.ml_serials)
                paired = jobs.machine_learning_curated(
                    self._input("step_trainer_trusted", frames).filter(incremental.among("serialNumber", ml_serials)),
                    self._input("accelerometer_trusted", frames).filter(incremental.among("user", rewrite.ml_owners)),
                    self._input("customer_curated", frames), salt=self.options.salt, tolerance_ms=tolerance)
                self._replace_owners_rows(job, "serialNumber", ml_serials,
                                          paired if built is None else paired.unionByName(built))
        return self.store.read_table(self.spark, job.output, self.state)

    def _rewrite_classified(self, job: Job, owner: str, owners: frozenset[str], batch: DataFrame | None,
                            now: DataFrame | None, previously: DataFrame | None) -> None:
        """Write a new version of a landing job's table: the previous version's rows of every owner
        but ``owners``, ``owners``' rows classified again from all their staged rows (``now``), and
        the new batch's rows of the other owners (``batch``, copies of kept rows marked).

        The reconciliation is the previous one with the batch added and ``owners``' rows counted
        again: their rows of earlier batches as the previous run classified them (``previously``,
        one aggregation over their rows) out, all of them as classified now in.  The previous one
        is a full refresh's, so the result is too; ``balanced`` is checked again on the sum.
        """
        assert job.reconciles is not None
        kept = (self.previous.reconciliation or {})[job.reconciles]
        metrics = reconcile.fate_metrics(job.weighted) + self._held_back_metric(job)
        added: list[DataFrame] = []
        observed_batch = observed_now = None
        if batch is not None:
            batch, observed_batch = reconcile.observe(batch, f"fates of {job.name} (new batch)",
                                                      metrics + [reconcile.already_kept_metric()])
            added.append(jobs.trusted_rows(batch, job.columns))
        if now is not None:
            now, observed_now = reconcile.observe(now, f"fates of {job.name} (recomputed owners)", metrics)
            added.append(jobs.trusted_rows(now, job.columns))
        self._replace_owners_rows(job, owner, sorted(owners), reduce(lambda a, b: a.unionByName(b), added)
                                  if added else None)
        if observed_batch is not None:
            entity = TABLES_BY_NAME[job.reconciles].entity
            fates = observed_batch.get
            self._note_held_back(job, fates, replace_previous=False)
            kept = reconcile.add(kept, reconcile.reconcile(
                {self.run_id: self.state.counts[entity][self.run_id]}, fates, job.weighted,
                int(fates[reconcile.ALREADY_KEPT])))
        recounted: dict[str, int] = {}
        if observed_now is not None:
            self._note_held_back(job, observed_now.get, replace_previous=False)
            recounted = reconcile.fate_split(observed_now.get, job.weighted)
        removed: dict[str, int] = {}
        if previously is not None:
            counted = previously.agg(*reconcile.fate_metrics(job.weighted)).first()
            removed = reconcile.fate_split({} if counted is None else counted.asDict(), job.weighted)
        self.reconciliation[job.reconciles] = reconcile.replace_rows(kept, removed, recounted, job.weighted)

    def _replace_owners_rows(self, job: Job, owner: str, owners: list[str], added: DataFrame | None) -> None:
        """Write a new version of a Parquet table with ``owners``' rows (``owner`` column) replaced
        by ``added``: the previous version's files holding no row of theirs are linked, and the
        files holding one are written again without those rows, with ``added``, as one new file.

        The landing jobs write each owner's rows into one file (``jobs._distinct_trusted``), so a
        few owners' rows are in a few files; an appended file holds its batch's owners.
        """
        from pyspark.sql import functions as F

        previous = self.previous.tables[job.output]
        table = self.store.read_table(self.spark, job.output, self.previous)
        holding = table.filter(incremental.among(owner, owners)).select(F.col("_metadata.file_name").alias("file"))
        files = sorted({r["file"] for r in holding.distinct().collect()})
        parts = [] if added is None else [added]
        replaced = None
        if files:
            folder = self.store.path(TABLES_BY_NAME[job.output].folder + previous.version)
            rows = self.spark.read.schema(table_schema(TABLES_BY_NAME[job.output])).parquet(
                *[f"{folder}/{name}" for name in files])
            rows, replaced = reconcile.observe(rows, f"rows of {job.output}'s rewritten files", reconcile.rows_metric())
            parts.insert(0, _owned_by(rows, owner, owners, False))
        written = None if not parts else reduce(lambda a, b: a.unionByName(b), parts)
        log.info("%s: %d of its files held rows of the %d owner(s) whose rows are replaced", job.output,
                 len(files), len(owners))
        self._link_version(job, written, frozenset(files), replaced)

    def _without_copies(self, job: Job, classified: DataFrame, time_column: str, owner_column: str,
                        table_owners: Callable[[list[str]], set[str]]) -> DataFrame:
        """A new batch's classification (cached) with its trusted copies of rows the table already
        holds marked ``reconcile.ALREADY_KEPT`` (``incremental.new_copies_marked``).

        ``table_owners``: which of the given owners (``owner_column``) the table has rows of.  A copy has its
        row's owner and time, so only the table's rows of the batch's owners in the batch's time
        range are compared, and none at all when no owner of the batch has rows in the table (a
        delivery of new customers).
        """
        from pyspark.sql import functions as F

        classified = self._cache(classified)
        spans = (classified.filter(F.col(jobs.FATE) == jobs.TRUSTED).groupBy(owner_column)
                 .agg(F.min(time_column).alias("first"), F.max(time_column).alias("last")).collect())
        holding = table_owners(sorted(r[owner_column] for r in spans)) if spans else set()
        spans = [r for r in spans if r[owner_column] in holding]
        if not spans:
            return classified
        owners = sorted(r[owner_column] for r in spans)
        first, last = min(r["first"] for r in spans), max(r["last"] for r in spans)
        # The time range lets Parquet's row-group statistics skip files of other times.
        table = self.store.read_table(self.spark, job.output, self.previous)
        existing = table.filter(F.col(time_column).between(first, last) & incremental.among(owner_column, owners))
        return self._cache(incremental.new_copies_marked(classified, existing, job.columns))

    def _append_classified(self, job: Job, classified: DataFrame | None) -> None:
        """Append a landing job's new trusted rows (copies of kept rows already marked) and add
        the batch's fates to the table's reconciliation."""
        assert job.reconciles is not None
        kept = (self.previous.reconciliation or {})[job.reconciles]
        if classified is None:
            self._append_rows(job, None)
            self.reconciliation[job.reconciles] = kept
            return
        metrics = reconcile.fate_metrics(job.weighted) + [reconcile.already_kept_metric()] + self._held_back_metric(job)
        observed, fates = reconcile.observe(classified, f"fates of {job.name}", metrics)
        self._append_rows(job, jobs.trusted_rows(observed, job.columns))
        self._note_held_back(job, fates.get, replace_previous=False)
        entity = TABLES_BY_NAME[job.reconciles].entity
        batch = reconcile.reconcile({self.run_id: self.state.counts[entity][self.run_id]}, fates.get, job.weighted,
                                    int(fates.get[reconcile.ALREADY_KEPT]))
        self.reconciliation[job.reconciles] = reconcile.add(kept, batch)

    @staticmethod
    def _held_back_metric(job: Job) -> list[Column]:
        owner = _HELD_BACK_OWNER.get(job.name)
        return [] if owner is None else [reconcile.held_back_metric(*owner)]

    def _note_held_back(self, job: Job, observed: dict[str, Any], replace_previous: bool) -> None:
        """Keep the owners of the rows a landing job held back: all of them after a rebuild, the
        previous ones plus the batch's after an append."""
        if job.name not in _HELD_BACK_OWNER:
            return
        found = reconcile.held_back_owners(observed)
        before = set() if replace_previous else self.held_back.get(job.name)
        self.held_back[job.name] = None if before is None else before | found

    def _held_back_index(self) -> HeldBackIndex | None:
        """The held-back index of the tables this run commits: each part from the job that
        classified in this run, or, for a table it kept, the previous index's (same inputs, same
        rows held back).  None when a part is unknown: the next run then rebuilds."""
        previous = self.store.read_held_back(self.previous) if self.previous.held_back else None
        parts = {"accelerometer_landing_to_trusted": None if previous is None else set(previous.users),
                 "step_trainer_landing_to_trusted": None if previous is None else set(previous.serials)}
        parts.update(self.held_back)
        users, serials = parts["accelerometer_landing_to_trusted"], parts["step_trainer_landing_to_trusted"]
        if users is None or serials is None:
            return None
        return HeldBackIndex(frozenset(users), frozenset(serials))

    def _append_rows(self, job: Job, rows: DataFrame | None) -> None:
        """Write a new version of a table: the previous version's files linked, ``rows`` added."""
        files = self._link_version(job, rows)
        schema = table_schema(TABLES_BY_NAME[job.output])
        self.new_rows[job.output] = self.spark.read.schema(schema).parquet(*files) if files else None

    def _link_version(self, job: Job, rows: DataFrame | None, without: frozenset[str] = frozenset(),
                      left_out: Observation | None = None) -> list[str]:
        """Name a new version of a Parquet table in the state: the previous version's files but
        ``without`` linked, ``rows`` written as one new file (counted on the way).  Its row count
        is the previous one plus ``rows``' less ``left_out``'s (an observation of the rows of the
        files left out).  Returns the new files' paths."""
        previous = self.previous.tables[job.output]
        inputs = self.inputs_of(job)  # before the write: the versions it read, not its own
        counted, observed = (None, None) if rows is None else \
            reconcile.observe(rows, f"rows of {job.output}", reconcile.rows_metric())
        version, files = self.store.append_table(counted, job.output, self.run_id, previous.version, without)
        added = 0 if observed is None else int(observed.get[reconcile.ROWS])
        removed = 0 if left_out is None else int(left_out.get[reconcile.ROWS])
        self._new_version(job, version, (previous.rows or 0) + added - removed, inputs)
        return files

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
            paths=dict(self.paths) if unchanged_since is None else {},
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
        index = self._held_back_index()
        self.state.held_back = None if index is None else self.store.write_held_back(self.run_id, index)
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
            reconciliation = {}
            if since is None:
                with compiled_for_lake(self.spark, self.landing_size):
                    reconciliation = self.run_jobs()
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


@dataclass
class AppendPlan:
    """What a run on the append path decided before its jobs (``PipelineRun._plan_append``)."""

    #: Every user with trusted accelerometer rows once this run's are added (column ``user``,
    #: customer-sized: a broadcast semi-join's right side).
    users: DataFrame
    #: The new accelerometer batch classified against the customers' latest records (None: no batch).
    accelerometer_batch: DataFrame | None
    #: Every customer's latest record, as the reading jobs use it (``jobs.latest_customers``).
    latest: DataFrame
    #: customer_curated before this run: its emails are accelerometer_trusted's users, its
    #: serial numbers step_trainer_trusted's.
    curated_before: DataFrame
    #: The owners whose rows this run classifies again (None: a plain append).
    rewrite: RewritePlan | None = None


@dataclass(frozen=True)
class OwnersRewrite:
    """The owners of one reading table whose rows a run classifies again, and their staged rows."""

    owners: frozenset[str]
    #: Their accepted rows of the earlier staging batches (cached), None when there are none.
    earlier_rows: DataFrame | None
    #: Their accepted rows of every staging batch, this run's included.
    rows: DataFrame | None
    #: Accelerometer owners only: those with trusted rows once classified again (they stay curated).
    trusted_owners: frozenset[str]
    #: Accelerometer owners only: ``rows`` classified now (cached), and ``earlier_rows`` classified
    #: as the previous run did.  (Step rows are classified in their job: they need customer_curated.)
    classified: DataFrame | None = None
    previously: DataFrame | None = None


@dataclass(frozen=True)
class RewritePlan:
    """What a run that rewrites some owners' rows recomputes (``PipelineRun._plan_append``)."""

    #: Customers whose consent or serial number changed (or new ones with held-back readings).
    users: OwnersRewrite
    #: Serial numbers whose step classification inputs changed and that have earlier rows.
    serials: OwnersRewrite
    #: Serial numbers whose ML rows are paired again: ``serials``, the changed customers' serials
    #: (before and after) and those whose old steps the new readings could pair with.
    ml_serials: frozenset[str]
    #: The curated customers (after this run) owning ``ml_serials``: whose readings those pair with.
    ml_owners: frozenset[str]
    #: The inputs the previous run classified with: its customers' latest records, its customer_curated.
    latest_before: DataFrame
    curated_before: DataFrame
    #: In words, for the run record's paths and the log.
    describe: str


#: The rewrite path recomputes at most this many changed customers, or one in REWRITE_SHARE of the
#: customers if more; beyond, the run rebuilds.  The rewrite rereads each reading table whole
#: (Parquet read and write, no shuffle) whatever the count, but classifies the changed customers'
#: staged rows twice (as before and as now) after a filtered read of every staging batch; at a few
#: per cent of the customers that filtered work nears the rebuild's single classification, and a
#: delivery that changes that many customers at once is a migration, not a daily upload.
REWRITE_MIN_OWNERS = 16
REWRITE_SHARE = 50


def _curated_among(curated: DataFrame, column: str, values: list[str]) -> set[str]:
    """Which of ``values`` a ``column`` of customer_curated holds (email or serialNumber)."""
    if not values:
        return set()
    return {r[column] for r in curated.select(column).filter(incremental.among(column, values)).distinct().collect()}


def _owned_by(rows: DataFrame, column: str, owners: list[str], inside: bool) -> DataFrame:
    """``rows`` whose ``column`` is one of ``owners`` (``inside``) or is not (a null owner is not)."""
    from pyspark.sql import functions as F

    if not inside and not owners:
        return rows
    mine = incremental.among(column, owners)
    return rows.filter(mine) if inside else rows.filter(F.col(column).isNull() | ~mine)


#: The tables an append path run appends to; the customer tables are recomputed (customer-sized).
_APPENDED = ("accelerometer_trusted", "step_trainer_trusted", "machine_learning_curated")
#: Per landing job, the owner column and the fates of the rows a new customer record could let in
#: (``HeldBackIndex``): accelerometer rows of unknown users (a known user's consent changing is a
#: changed record, checked apart), step rows excluded for their serial's owners.
_HELD_BACK_OWNER = {
    "accelerometer_landing_to_trusted": ("user", (jobs.UNKNOWN_CUSTOMER,)),
    "step_trainer_landing_to_trusted": (
        "serialNumber", (jobs.UNKNOWN_CUSTOMER, jobs.EXCLUDED_CONSENT, jobs.NOT_CURATED, jobs.BEFORE_CONSENT)),
}

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
