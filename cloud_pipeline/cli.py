"""`stedi pipeline` commands and `stedi query`.

Spark is imported inside the commands so that `stedi --help` stays fast.
"""

from __future__ import annotations

import json
import logging
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import typer

from cloud_pipeline.aws import cli as aws_cli
from cloud_pipeline.config import JOB_ORDER, PipelineOptions, TableFormat, salt_from_env
from stedi.settings import default_lake

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cloud_pipeline.runner import PipelineRun, RunResult
    from cloud_pipeline.storage.s3_cache import Need
    from cloud_pipeline.storage.store import PipelineStore

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
    "into a local cache (STEDI_CACHE or ~/.stedi/cache, by ETag) and Spark works there."
)
_SSE_OPTION = typer.Option(
    None, "--sse", help="S3 lakes: encrypt what this command uploads: AES256 (SSE-S3) or aws:kms."
)
_KMS_OPTION = typer.Option(None, "--kms-key-id", help="S3 lakes: the KMS key for --sse aws:kms.")


def _spark(store: PipelineStore) -> AbstractContextManager[SparkSession]:
    """A local session for one command, tuned by the lake's landing size; one that was already
    running (a notebook, a test) is borrowed and left running."""
    from cloud_pipeline.session import spark_session

    return spark_session(landing_bytes=store.landing_bytes())


def _open(lake: str | None, need: Need = "run", sse: str | None = None, kms_key_id: str | None = None) -> PipelineStore:
    """The lake's pipeline store, or a clear error (not a traceback) when it cannot be opened.

    An S3 lake is synced into its local cache as far as ``need`` requires."""
    from cloud_pipeline.storage.s3_cache import open_store
    from stedi.lake import LakeError

    try:
        return open_store(lake or default_lake(), need, sse=sse, kms_key_id=kms_key_id)
    except LakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _run(pipeline_run: PipelineRun) -> RunResult:
    """Run, turning a lake that cannot be written (an S3 publish that failed) into a clear error."""
    from stedi.lake import LakeError

    try:
        return pipeline_run.run()
    except LakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _jobs(values: list[str] | None) -> tuple[str, ...]:
    if not values:
        return JOB_ORDER
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    unknown = [n for n in names if n not in JOB_ORDER]
    if unknown:
        raise typer.BadParameter(f"unknown job(s) {', '.join(unknown)}; jobs are: {', '.join(JOB_ORDER)}")
    # Always run in dependency order, whatever order they were given in.
    return tuple(j for j in JOB_ORDER if j in names)


def _summary(result: RunResult) -> None:
    from rich.console import Console
    from rich.table import Table

    from cloud_pipeline.transforms.reconcile import rows_in

    console = Console()
    if result.record.unchanged_since is not None:
        console.print(f"nothing new since run {result.record.unchanged_since}: every table stays as it "
                      "built it (no new or changed landing files, same options and salt)")
    rows = Table(title=f"run {result.run_id}: rows per table")
    rows.add_column("table")
    rows.add_column("rows", justify="right")
    for name, n in result.tables.items():
        rows.add_row(name, f"{n:,}" if n is not None else "?")
    console.print(rows)
    recon = Table(title="reconciliation: landing = trusted + excluded + duplicates + quarantined")
    categories = ["landing", "trusted", "superseded", "duplicate", "excluded_no_consent",
                  "excluded_before_consent", "excluded_unknown_customer", "excluded_not_curated", "quarantined"]
    recon_tables = result.record.reconciliation
    recon.add_column("rows")
    for name in recon_tables:
        recon.add_column(name, justify="right")
    for c in categories:
        recon.add_row(c, *[f"{rows_in(r, c):,}" for r in recon_tables.values()])
    # Subsets of the kept rows, not categories (docs/lake.md, "What a landing line may hold").
    for c, label in (("coerced", "kept, coerced"), ("with_warnings", "kept, with warnings")):
        recon.add_row(label, *[f"{rows_in(r, c):,}" for r in recon_tables.values()])
    recon.add_row("balanced", *["yes" if r["balanced"] else "NO" for r in recon_tables.values()])
    console.print(recon)


@app.command("run")
def run(
    lake: str = typer.Option(None, "--lake", help=_LAKE_HELP),
    jobs: list[str] = _JOBS_OPTION,
    full_refresh: bool = typer.Option(False, "--full-refresh", help="Re-read every landing file instead of only unseen ones."),
    consent: str = typer.Option("all", "--consent", help="all: every reading of a consenting customer; as-of: only readings taken at or after the consent date."),
    tolerance_ms: int = typer.Option(0, "--tolerance-ms", min=0, help="Pair step and accelerometer readings within N ms (0: exact timestamps)."),
    fmt: str = typer.Option("parquet", "--format", help="Format of trusted and curated tables: parquet or json (JSON lines)."),
    sse: str = _SSE_OPTION,
    kms_key_id: str = _KMS_OPTION,
) -> None:
    """Build the trusted and curated zones from the landing zone, incrementally and atomically.

    Only landing files not seen before are parsed; every table is then rebuilt and replaced as a
    whole, so the result equals a full run.  Lines that break the contract go to the quarantine
    table.  Prints rows per table and the reconciliation (also stored under _pipeline/runs/).
    Exits with status 1 if a table does not reconcile.

    On an s3:// lake the run works on a local cache: changed landing objects (by ETag), the state
    and the current tables are fetched; the new versions are uploaded, then the state file and
    the _CURRENT pointers are switched, then old versions are deleted (docs/aws.md).
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from cloud_pipeline.runner import PipelineRun

    if consent not in ("all", "as-of"):
        raise typer.BadParameter("--consent must be 'all' or 'as-of'")
    if fmt not in ("parquet", "json"):
        raise typer.BadParameter("--format must be 'parquet' or 'json'")
    table_format: TableFormat = "json" if fmt == "json" else "parquet"
    options = PipelineOptions(
        consent="as-of" if consent == "as-of" else "all",
        tolerance_ms=tolerance_ms,
        format=table_format,
        salt=salt_from_env(),
        full_refresh=full_refresh,
        jobs=_jobs(jobs),
    )
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("syncing the lake" if (lake or "").startswith("s3://") else "starting Spark", total=None)
        store = _open(lake, "run", sse, kms_key_id)
        bar.update(task, description="starting Spark")
        with _spark(store) as spark:
            result = _run(PipelineRun(spark, store, options, progress=lambda step: bar.update(task, description=step)))
    _summary(result)
    if not result.balanced:
        typer.echo("reconciliation failed: see the table above", err=True)
        raise typer.Exit(1)


@app.command("erase")
def erase(
    email: str = typer.Option(..., "--email", help="The customer's email (the key across the lake)."),
    lake: str = typer.Option(None, "--lake", help=_LAKE_HELP),
    sse: str = _SSE_OPTION,
    kms_key_id: str = _KMS_OPTION,
) -> None:
    """Remove one customer from every zone, landing included, and log it.

    Landing lines of the customer are removed from their files; trusted, curated, staging and
    quarantine are then rebuilt by a full-refresh run that deletes every older version (including
    the one a run otherwise keeps until the next commit).  On an
    s3:// lake the rewritten landing objects are uploaded (keeping their encryption unless --sse
    is given) and emptied ones deleted before the run.
    """
    from cloud_pipeline.runner import PipelineRun
    from cloud_pipeline.storage.erase import erase_landing, record_erase
    from cloud_pipeline.storage.s3_cache import CachedStore
    from cloud_pipeline.storage.state import BuildOptions

    store = _open(lake, "run", sse, kms_key_id)
    salt = salt_from_env()
    report = erase_landing(store, email, salt)
    log.info("erased customer %s from landing: %s", report.customer_key[:12], report.lines_removed)
    if isinstance(store, CachedStore):
        store.cache.push_landing()
    run_id = None
    state = store.load_state()
    if state.last_run is not None:
        # The rebuild keeps the options the lake was last built with.
        previous = state.options or BuildOptions.from_dict({})
        options = PipelineOptions(
            consent=previous.consent,
            tolerance_ms=previous.tolerance_ms,
            format=previous.format,
            salt=salt,
            full_refresh=True,
        )
        with _spark(store) as spark:
            # No previous version is kept (docs/pipeline.md, "Versions kept"): it holds the customer.
            run_id = _run(PipelineRun(spark, store, options, keep_previous=False)).run_id
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
) -> None:
    """Write one self-contained HTML report of the lake (no external requests; open it anywhere).

    Rows per table and zone (the eight tables and quarantine), the last run's reconciliation,
    quarantine counts per rule with example reasons, and three matplotlib plots: a sample
    customer's distance signal with the accelerometer magnitude (from machine_learning_curated,
    by customerKey), readings per customer, and consent over time.  Aggregates are computed in
    Spark; only small results reach this process.  Needs at least landing data.
    """
    from pathlib import Path

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from cloud_pipeline.report.html import write_report
    from stedi.lake import LakeError

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("syncing the lake" if (lake or "").startswith("s3://") else "starting Spark", total=None)
        store = _open(lake, "query")
        bar.update(task, description="starting Spark")
        try:
            with _spark(store) as spark:
                written = write_report(spark, store, Path(out), max_points, lambda s: bar.update(task, description=s))
        except LakeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    drawn = [k for k, p in written.plots.items() if p is not None]
    typer.echo(f"report: {out} ({len(written.html) / 1024:.0f} KB; run {written.data.last_run or 'none'}; "
               f"plots: {', '.join(drawn) or 'none'})")


@app.command("status")
def status(lake: str = typer.Option(None, "--lake", help=_LAKE_HELP)) -> None:
    """Show the lake's pipeline state: current table versions and the last run's reconciliation."""
    store = _open(lake, "status")
    state = store.load_state()
    runs = sorted(store.runs(), key=lambda r: r.run_id)
    out: dict[str, Any] = {"last_run": state.last_run,
                           "tables": {name: t.to_dict() for name, t in state.tables.items()}}
    if runs:
        out["reconciliation"] = runs[-1].reconciliation
    typer.echo(json.dumps(out, indent=2))


def query(
    sql: str = typer.Argument(..., help='Spark SQL, e.g. "SELECT count(*) FROM machine_learning_curated".'),
    lake: str = typer.Option(None, "--lake", help=_LAKE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per row instead of a table."),
    limit: int = typer.Option(1000, "--limit", min=1, help="At most this many rows are printed."),
) -> None:
    """Run Spark SQL over the lake's tables by name, like Athena.

    Tables: customer_landing, accelerometer_landing, step_trainer_landing, customer_trusted,
    accelerometer_trusted, step_trainer_trusted, customer_curated, machine_learning_curated,
    quarantine (rejected landing lines with rule, reason, source_file, run_id) and warnings (kept
    lines with a descriptive field not as the contract says: rule, field, reason, value, source_file,
    run_id).  Landing tables read every line, with the lossless coercions of docs/lake.md.
    """
    from cloud_pipeline.storage.catalog import register_tables

    store = _open(lake, "query")
    with _spark(store) as spark:
        register_tables(spark, store)
        try:
            frame = spark.sql(sql)
            rows = frame.limit(limit).collect()
        except Exception as exc:  # Spark's AnalysisException and parse errors: say what is wrong
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            typer.echo(f"query failed: {message}", err=True)
            raise typer.Exit(1) from None
        columns = frame.columns
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row.asDict(recursive=True), default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    Console().print(table)
