"""`stedi pipeline` commands and `stedi query`.

Spark is imported inside the commands so that `stedi --help` stays fast.
"""

from __future__ import annotations

import json
import logging
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from cloud_pipeline.aws import cli as aws_cli
from cloud_pipeline.config import JOB_ORDER, SALT_ENV, PipelineOptions, salt_from_env
from stedi.errors import UserError
from stedi.settings import default_lake

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cloud_pipeline.runner import PipelineRun, RunResult
    from cloud_pipeline.storage.s3_cache import Need
    from cloud_pipeline.storage.store import PipelineStore
    from stedi.lake import FolderLake, S3Lake

log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True)
# The lake on Athena / Glue (cloud_pipeline/aws/cli.py).
app.command("ddl")(aws_cli.ddl)
app.command("deploy")(aws_cli.deploy)

_JOBS_OPTION = typer.Option(
    None, "--jobs", help=f"Jobs to run (repeat or comma-separate) [default: all: {', '.join(JOB_ORDER)}]."
)
_LAKE_HELP = (
    "Lake folder or s3://bucket/prefix [default: STEDI_LAKE or ~/.stedi/lake].  An S3 lake is synced "
    "into a local cache (STEDI_CACHE or ~/.stedi/cache, by ETag) and the command works there."
)
_SSE_OPTION = typer.Option(
    None, "--sse", help="S3 lakes: encrypt what this command uploads: AES256 (SSE-S3) or aws:kms."
)
_KMS_OPTION = typer.Option(None, "--kms-key-id", help="S3 lakes: the KMS key for --sse aws:kms.")

#: Engines of `stedi query` and `stedi pipeline report`, the default first.
ENGINES = ("duckdb", "spark")
_ENGINE_HELP = ("duckdb: an embedded engine, answers in well under a second; spark: Spark SQL in a local "
                "session (seconds to start), the dialect of the pipeline's own jobs.")


def _engine(value: str) -> str:
    if value not in ENGINES:
        raise typer.BadParameter(f"--engine must be one of: {', '.join(ENGINES)}")
    return value


def _spark(store: PipelineStore, landing_bytes: int | None = None) -> AbstractContextManager[SparkSession]:
    """A local session for one command, tuned by the landing data it reads (by default the
    lake's whole landing size); one that was already running (a notebook, a test) is borrowed
    and left running."""
    from cloud_pipeline.session import spark_session

    return spark_session(landing_bytes=store.landing_bytes() if landing_bytes is None else landing_bytes)


def _lake(url: str) -> FolderLake | S3Lake:
    from stedi.lake import LakeError, open_lake

    try:
        return open_lake(url)
    except LakeError as exc:
        raise UserError(str(exc)) from None


def _require_lake(lake: FolderLake | S3Lake, url: str, *, may_create: bool = False) -> None:
    """Refuse a lake that is not there (a mistyped path must not become a new, empty lake)."""
    from stedi.lake import LakeError, lake_exists

    try:
        there = lake_exists(lake)  # a PermanentError (credentials, bucket) passes as it is: exit 3
    except LakeError as exc:
        raise UserError(str(exc)) from None
    if there:
        return
    if may_create:
        log.info("creating a new lake at %s", lake.url)
        return
    raise UserError(
        f"no lake at {lake.url}",
        hint=f"check the path; create it with `stedi pipeline run --lake {url} --create`, or put landing data "
             f"there (`stedi sim fleet --lake {url}`, `stedi gateway run --lake {url}`)",
    )


def _is_default_lake(lake: FolderLake | S3Lake) -> bool:
    return lake.url == _lake(default_lake()).url


def _open(lake: str | None, need: Need = "run", sse: str | None = None, kms_key_id: str | None = None) -> PipelineStore:
    """The lake's pipeline store, or a clear error (not a traceback) when it cannot be opened.

    An S3 lake is synced into its local cache as far as ``need`` requires."""
    from cloud_pipeline.storage.s3_cache import open_store
    from stedi.lake import LakeError

    try:
        return open_store(lake or default_lake(), need, sse=sse, kms_key_id=kms_key_id)
    except LakeError as exc:
        raise UserError(str(exc)) from None


def _run(pipeline_run: PipelineRun) -> RunResult:
    """Run, turning a lake that cannot be written (an S3 publish that failed) into a clear error."""
    from stedi.lake import LakeError

    try:
        return pipeline_run.run()
    except LakeError as exc:
        raise UserError(str(exc)) from None


def _jobs(values: list[str] | None) -> tuple[str, ...]:
    if not values:
        return JOB_ORDER
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    unknown = [n for n in names if n not in JOB_ORDER]
    if unknown:
        raise typer.BadParameter(f"unknown job(s) {', '.join(unknown)}; jobs are: {', '.join(JOB_ORDER)}")
    # Always run in dependency order, whatever order they were given in.
    return tuple(j for j in JOB_ORDER if j in names)


def _summary(result: RunResult, ignored: list[str]) -> None:
    from rich.console import Console

    from cloud_pipeline.report.console import plural, reconciliation_table, rows_table

    console = Console()
    if result.record.unchanged_since is not None:
        console.print(f"nothing new since run {result.record.unchanged_since}: every table stays as it "
                      "built it (no new or changed landing files, same options and salt)")
    console.print(rows_table(result.run_id, result.tables))
    console.print(reconciliation_table(result.record.reconciliation))
    if ignored:
        console.print(f"skipped {plural(len(ignored), 'file')} in landing folders that are not landing files "
                      "(.json, .jsonl, .json.gz)")


def _warn_ignored(store: PipelineStore) -> list[str]:
    """One warning per run for the files a landing folder holds that no run reads (a .txt, a .csv)."""
    ignored = store.ignored_landing_files()
    if ignored:
        shown = ", ".join(ignored[:3]) + (f" and {len(ignored) - 3} more" if len(ignored) > 3 else "")
        log.warning("%d file(s) in landing folders are not landing files (.json, .jsonl, .json.gz) and are skipped: %s",
                    len(ignored), shown)
    return ignored


@app.command("run")
def run(
    lake: str = typer.Option(None, "--lake", help=_LAKE_HELP),
    jobs: list[str] = _JOBS_OPTION,
    full_refresh: bool = typer.Option(False, "--full-refresh", help="Re-read every landing file instead of only unseen ones; needed to change --consent, --tolerance-ms or --format of a lake."),
    consent: str = typer.Option(None, "--consent", help="all: every reading of a consenting customer; as-of: only readings taken at or after the consent date.  [default: the lake's, as its first run set it; all for a new lake]"),
    tolerance_ms: int = typer.Option(None, "--tolerance-ms", min=0, help="Pair step and accelerometer readings within N ms (0: exact timestamps).  [default: the lake's; 0 for a new lake]"),
    fmt: str = typer.Option(None, "--format", help="Format of trusted and curated tables: parquet or json (JSON lines).  [default: the lake's; parquet for a new lake]"),
    create: bool = typer.Option(False, "--create", help="Create the lake if there is none at --lake (the default lake is always created)."),
    sse: str = _SSE_OPTION,
    kms_key_id: str = _KMS_OPTION,
    database: str = typer.Option(None, "--database", help="S3 lakes: after the commit, move this Glue / Athena database's tables to the new versions (as the deployed jobs do)."),
) -> None:
    """Build the trusted and curated zones from the landing zone, incrementally and atomically.

    Only landing files not seen before are parsed; every table is then rebuilt and replaced as a
    whole, so the result equals a full run.  Lines that break the contract go to the quarantine
    table.  Prints rows per table and the reconciliation (also stored under _pipeline/runs/).
    Exits with status 1 if a table does not reconcile, 4 if another run holds the lake.

    The options that shape the tables (--consent, --tolerance-ms, --format) are recorded in the
    lake by its first run and reused by later runs that do not give them; a different value
    needs --full-refresh.

    On an s3:// lake the run works on a local cache: changed landing objects (by ETag), the state
    and the current tables are fetched; the new versions are uploaded, then the state file and
    the _CURRENT pointers are switched, then old versions are deleted (docs/aws.md).
    """
    from cloud_pipeline.progress import StepProgress
    from cloud_pipeline.runner import PipelineRun, new_run_id, salt_fingerprint
    from cloud_pipeline.storage.lock import writer_lock
    from cloud_pipeline.storage.recorded_options import AskedOptions, choose_options

    if consent not in (None, "all", "as-of"):
        raise typer.BadParameter("--consent must be 'all' or 'as-of'")
    if fmt not in (None, "parquet", "json"):
        raise typer.BadParameter("--format must be 'parquet' or 'json'")
    url = lake or default_lake()
    if database is not None:  # checked before the run: a run must not end in a catalog it cannot reach
        from cloud_pipeline.aws.catalog import check_catalog

        check_catalog(url, database)
    target = _lake(url)
    _require_lake(target, url, may_create=create or _is_default_lake(target))
    asked = AskedOptions(
        consent=None if consent is None else ("as-of" if consent == "as-of" else "all"),
        tolerance_ms=tolerance_ms,
        format=None if fmt is None else ("json" if fmt == "json" else "parquet"),
    )
    with writer_lock(target, new_run_id(), "run", sse=sse, kms_key_id=kms_key_id) as lock, StepProgress() as progress:
        progress.step("syncing the lake" if url.startswith("s3://") else "reading the lake's state")
        store = _open(url, "run", sse, kms_key_id)
        store.writer_lock = lock
        state = store.load_state()
        chosen = choose_options(state.options, asked, full_refresh)
        for change in chosen.changed:
            log.warning("full refresh with a changed option: %s (every table is rebuilt with it)", change)
        if chosen.reused and state.last_run is not None:
            log.info("options of the lake reused: %s", " ".join(chosen.reused))
        salt = salt_from_env()
        built_with = {t.salt_fingerprint for t in state.tables.values() if t.salt_fingerprint}
        if built_with and salt_fingerprint(salt) not in built_with:
            log.warning("%s is not the salt the lake's tables were built with: every customerKey of "
                        "machine_learning_curated changes with this run", SALT_ENV)
        options = PipelineOptions(consent=chosen.options.consent, tolerance_ms=chosen.options.tolerance_ms,
                                  format=chosen.options.format, salt=salt, full_refresh=full_refresh,
                                  jobs=_jobs(jobs))
        ignored = _warn_ignored(store)
        progress.step("starting Spark")
        # An incremental run's work is what it stages, plus customer-sized plans and filtered reads
        # of the tables: sized by its new landing files, a daily run on a large lake gets the
        # quick-start session (measured at 100x, a +1 % delivery: 39.8 s -> 33.3 s; a withdrawal:
        # 30.7 s -> 24.7 s).  A full refresh, JSON tables and runs of some jobs rebuild from every
        # staged row: sized by the whole lake.
        rebuilds = full_refresh or options.format != "parquet" or options.jobs != JOB_ORDER
        with _spark(store, None if rebuilds else store.bytes_to_stage(state)) as spark:
            progress.watch(spark)
            pipeline_run = PipelineRun(spark, store, options, progress=progress.step)
            lock.update(pipeline_run.run_id)
            result = _run(pipeline_run)
        if database is not None:  # still holding the lock: no other commit moves the catalog meanwhile
            from cloud_pipeline.aws.catalog import sync_catalog

            synced = sync_catalog(url, database)
            typer.echo(f"catalog {database}: {len(synced.moved)} table(s) moved to the new version, "
                       f"{len(synced.created)} created")
    _summary(result, ignored)
    if chosen.changed:
        typer.echo(f"changed by this full refresh: {'; '.join(chosen.changed)}")
    if not result.balanced:
        typer.echo("reconciliation failed: see the table above", err=True)
        raise typer.Exit(1)


@app.command("erase")
def erase(
    email: str = typer.Option(..., "--email", help="The customer's email (the key across the lake)."),
    lake: str = typer.Option(None, "--lake", help=_LAKE_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list the landing files and lines that would be removed; change nothing."),
    sse: str = _SSE_OPTION,
    kms_key_id: str = _KMS_OPTION,
) -> None:
    """Remove one customer from every zone, landing included, and log it.

    Landing lines of the customer are removed from their files; trusted, curated, staging and
    quarantine are then rebuilt by a full-refresh run that deletes every older version (including
    the one a run otherwise keeps until the next commit).  On an
    s3:// lake the rewritten landing objects are uploaded (keeping their encryption unless --sse
    is given) and emptied ones deleted before the run.  An email with no line in the landing zone
    changes nothing and exits with status 2; another run holding the lake, with 4.
    """
    from cloud_pipeline.runner import PipelineRun, new_run_id
    from cloud_pipeline.storage.erase import erase_landing, erased_nothing, record_erase
    from cloud_pipeline.storage.lock import writer_lock
    from cloud_pipeline.storage.recorded_options import FIRST_RUN_DEFAULTS
    from cloud_pipeline.storage.s3_cache import CachedStore

    url = lake or default_lake()
    target = _lake(url)
    _require_lake(target, url)
    with writer_lock(target, new_run_id(), "erase", sse=sse, kms_key_id=kms_key_id) as lock:
        store = _open(url, "run", sse, kms_key_id)
        store.writer_lock = lock
        salt = salt_from_env()
        report = erase_landing(store, email, salt, dry_run=dry_run)
        if erased_nothing(report):
            raise UserError(f"no line of {email} in the landing zone of {target.url}: nothing erased, nothing rebuilt",
                            hint="check the spelling of the email (emails are matched exactly)")
        if dry_run:
            typer.echo(json.dumps({"dry_run": True, "customer_key": report.customer_key,
                                   "lines_to_remove": report.lines_removed, "files_to_rewrite": report.files,
                                   "serials_kept_shared": report.shared_serials,
                                   "rebuild": "a full-refresh run of every table"}, indent=2))
            return
        log.info("erased customer %s from landing: %s", report.customer_key[:12], report.lines_removed)
        if isinstance(store, CachedStore):
            store.cache.push_landing()
        run_id = None
        state = store.load_state()
        if state.last_run is not None:
            # The rebuild keeps the options the lake was last built with.
            previous = state.options or FIRST_RUN_DEFAULTS
            options = PipelineOptions(
                consent=previous.consent,
                tolerance_ms=previous.tolerance_ms,
                format=previous.format,
                salt=salt,
                full_refresh=True,
            )
            with _spark(store) as spark:
                # No previous version is kept (docs/pipeline.md, "Versions kept"): it holds the customer.
                pipeline_run = PipelineRun(spark, store, options, keep_previous=False)
                lock.update(pipeline_run.run_id)
                run_id = _run(pipeline_run).run_id
        key = record_erase(store, report, run_id)
    log.info("erase recorded in %s", key)
    typer.echo(json.dumps({"customer_key": report.customer_key, "lines_removed": report.lines_removed,
                           "files_rewritten": report.files_rewritten, "rebuilt_by_run": run_id,
                           "unsearched_damaged_files": report.unsearched_files,
                           "suspect_lines_dropped": report.suspect_lines_dropped}))


@app.command("report")
def report(
    lake: str = typer.Option(None, "--lake", help=_LAKE_HELP),
    out: str = typer.Option("report.html", "--out", help="The HTML file to write."),
    max_points: int = typer.Option(2000, "--max-points", min=10, help="Points of the sample customer's signal drawn at most."),
    engine: str = typer.Option("duckdb", "--engine", callback=_engine, help="Where the report's aggregates are computed (the same figures either way): duckdb, embedded, no "
                                                                 "Spark; spark, a local Spark session."),
) -> None:
    """Write one self-contained HTML report of the lake (no external requests; open it anywhere).

    Rows per table and zone (the eight tables and quarantine), the last run's reconciliation,
    quarantine counts per rule with example reasons, and three matplotlib plots: a sample
    customer's distance signal with the accelerometer magnitude (from machine_learning_curated,
    by customerKey), readings per customer, and consent over time.  Aggregates are computed in
    DuckDB (or Spark with --engine spark, the same figures); only small results reach this
    process.  Needs at least landing data.
    """
    from pathlib import Path

    from cloud_pipeline.progress import StepProgress
    from cloud_pipeline.report.html import Report, write_report, write_report_duckdb
    from stedi.lake import LakeError

    url = lake or default_lake()
    _require_lake(_lake(url), url)
    with StepProgress() as progress:
        progress.step("syncing the lake" if url.startswith("s3://") else "reading the lake's state")
        store = _open(url, "query")
        try:
            written: Report
            if engine == "spark":
                progress.step("starting Spark")
                with _spark(store) as spark:
                    progress.watch(spark)
                    written = write_report(spark, store, Path(out), max_points, progress.step)
            else:
                written = write_report_duckdb(store, Path(out), max_points, progress.step)
        except LakeError as exc:  # a lake with nothing to report
            raise UserError(str(exc)) from None
    drawn = [k for k, p in written.plots.items() if p is not None]
    typer.echo(f"report: {out} ({len(written.html) / 1024:.0f} KB; run {written.data.last_run or 'none'}; "
               f"plots: {', '.join(drawn) or 'none'})")


@app.command("status")
def status(
    lake: str = typer.Option(None, "--lake", help=_LAKE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the state as JSON (for scripts) instead of tables."),
) -> None:
    """Show the lake's pipeline state: current table versions and the last run's reconciliation."""
    url = lake or default_lake()
    target = _lake(url)
    _require_lake(target, url)
    store = _open(url, "status")
    state = store.load_state()
    runs = sorted(store.runs(), key=lambda r: r.run_id)
    if as_json:
        out: dict[str, Any] = {"last_run": state.last_run,
                               "tables": {name: t.to_dict() for name, t in state.tables.items()}}
        if runs:
            out["reconciliation"] = runs[-1].reconciliation
            # Per table, how the last run made it: append, rebuild (and why), kept.
            out["paths"] = runs[-1].paths
        typer.echo(json.dumps(out, indent=2))
        return
    from rich.console import Console

    from cloud_pipeline.report.console import print_status
    from cloud_pipeline.storage.lock import current_writer

    print_status(Console(), target.url, state, runs[-1] if runs else None, current_writer(target))


def _query_error(exc: Exception, tables: list[str], columns: dict[str, list[str]]) -> UserError:
    """Spark's analysis or parse error as one message a person can act on."""
    condition = ""
    for name in ("getCondition", "getErrorClass"):  # Spark 4 / Spark 3.5
        getter = getattr(exc, name, None)
        if callable(getter):
            try:
                condition = getter() or ""
            except Exception:  # an exception of another kind
                condition = ""
            if condition:
                break
    params: dict[str, str] = {}
    getter = getattr(exc, "getMessageParameters", None)
    if callable(getter):
        params = getter() or {}
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if condition.startswith("TABLE_OR_VIEW_NOT_FOUND"):
        name = params.get("relationName", "").strip("`") or "?"
        return UserError(f"query failed: there is no table {name}", hint=f"the tables are: {', '.join(tables)}")
    if condition.startswith("UNRESOLVED_COLUMN"):
        name = params.get("objectName", "").strip("`") or "?"
        known = "; ".join(f"{t}: {', '.join(cs)}" for t, cs in columns.items())
        hint = f"columns of the tables it reads: {known}" if known else f"the tables are: {', '.join(tables)}"
        return UserError(f"query failed: there is no column {name}", hint=hint)
    return UserError(f"query failed: {first}")


def _duck_error(exc: Exception, tables: list[str], columns: dict[str, list[str]]) -> UserError:
    """DuckDB's catalog, binder or parser error as one message a person can act on (the same
    messages as Spark's: ``_query_error``)."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    table = re.match(r"Catalog Error: Table with name (.+?) does not exist", first)
    if table:
        return UserError(f"query failed: there is no table {table.group(1)}", hint=f"the tables are: {', '.join(tables)}")
    column = re.match(r'Binder Error: Referenced column "(.+?)" not found', first)
    if column:
        known = "; ".join(f"{t}: {', '.join(cs)}" for t, cs in columns.items())
        hint = f"columns of the tables it reads: {known}" if known else f"the tables are: {', '.join(tables)}"
        return UserError(f"query failed: there is no column {column.group(1)}", hint=hint)
    return UserError(f"query failed: {first}")


def _named_tables(sql: str, tables: list[str]) -> list[str]:
    return [t for t in tables if re.search(rf"\b{re.escape(t)}\b", sql, re.IGNORECASE)]


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    #: The rows as ``--json`` prints them: Spark's ``Row.asDict(recursive=True)`` (a later column
    #: of the same name wins), a DuckDB row zipped with its column names the same way.
    records: list[dict[str, Any]]


def _query_duckdb(store: PipelineStore, sql: str, limit: int) -> QueryResult:
    """The query's columns and its first ``limit`` rows."""
    import duckdb

    from cloud_pipeline.storage.duck import open_duck
    from stedi.lake import LakeError

    try:
        duck = open_duck(store, sql)
    except LakeError as exc:  # the state names a table version the lake lacks, or a file is damaged
        raise UserError(str(exc), hint="run `stedi pipeline run --full-refresh` to rebuild every table") from None
    try:
        try:
            relation = duck.con.sql(sql)
            if relation is None:  # a statement that returns nothing (SET, CREATE VIEW ...)
                return QueryResult([], [], [])
            columns = list(relation.columns)
            rows = relation.limit(limit).fetchall()
        except duckdb.Error as exc:  # DuckDB's catalog, binder, parser and conversion errors
            named = _named_tables(sql, duck.tables)
            raise _duck_error(exc, duck.tables, {t: duck.columns(t) for t in named}) from None
        return QueryResult(columns, rows, [dict(zip(columns, row, strict=True)) for row in rows])
    finally:
        duck.close()


def _query_spark(store: PipelineStore, sql: str, limit: int) -> QueryResult:
    from cloud_pipeline.storage.catalog import register_tables

    with _spark(store) as spark:
        tables = register_tables(spark, store)
        try:
            frame = spark.sql(sql)
            rows = frame.limit(limit).collect()
        except Exception as exc:  # Spark's AnalysisException and parse errors: say what is wrong
            # The columns of the tables the query names: views' schemas, known without reading data.
            columns = {t: spark.table(t).columns for t in _named_tables(sql, tables)}
            raise _query_error(exc, tables, columns) from None
        return QueryResult(frame.columns, [tuple(row) for row in rows], [row.asDict(recursive=True) for row in rows])


def query(
    sql: str = typer.Argument(..., help='SQL, e.g. "SELECT count(*) AS n FROM machine_learning_curated": DuckDB\'s dialect, '
                                        "or Spark SQL with --engine spark (docs/pipeline.md, \"Querying the lake\")."),
    lake: str = typer.Option(None, "--lake", help=_LAKE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per row instead of a table."),
    limit: int = typer.Option(1000, "--limit", min=1, help="At most this many rows are printed."),
    engine: str = typer.Option("duckdb", "--engine", callback=_engine, help=_ENGINE_HELP),
) -> None:
    """Run SQL over the lake's tables by name, like Athena.

    Tables: customer_landing, accelerometer_landing, step_trainer_landing, customer_trusted,
    accelerometer_trusted, step_trainer_trusted, customer_curated, machine_learning_curated,
    quarantine (rejected landing lines with rule, reason, source_file, run_id) and warnings (kept
    lines with a descriptive field not as the contract says: rule, field, reason, value, source_file,
    run_id).  Landing tables read every line, with the lossless coercions of docs/lake.md (a
    few malformed lines read differently in DuckDB and Spark: docs/pipeline.md, "Landing tables in
    DuckDB").  Every table is its current committed version.

    The default engine is DuckDB, embedded: no Spark starts.  Its SQL is DuckDB's, close to
    Athena's but not the same: string literals in single quotes, "double quotes" for names, 7 / 2
    is 3.5 (Athena: 3; use // for integer division), date functions differ; name every computed
    column with AS (an unnamed count(*) is "count_star()" in DuckDB, "count(1)" in Spark).  The
    differences are listed in docs/pipeline.md.  --engine spark runs the query in Spark SQL.

    A query the engine cannot run exits with status 2 and one message (unknown tables and
    columns list the known ones).  On an s3:// lake the landing files, the current table
    versions and the quarantine and warnings batches are synced into the local cache first.
    """
    url = lake or default_lake()
    _require_lake(_lake(url), url)
    store = _open(url, "query")
    run_query = _query_spark if engine == "spark" else _query_duckdb
    result = run_query(store, sql, limit)
    if as_json:
        for record in result.records:
            typer.echo(json.dumps(record, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for c in result.columns:
        # Fold a long value onto more lines rather than cut it.
        table.add_column(c, overflow="fold")
    for row in result.rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    Console().print(table)
