"""What every Glue / spark-submit job script does: read Glue-style arguments, get a Spark session
(a ``GlueContext`` on Glue), run ONE pipeline job on the lake with the local runner's code, commit.

Glue passes ``--JOB_NAME`` and the job's ``--key value`` parameters plus its own (``--JOB_ID``,
``--JOB_RUN_ID``, ``--TempDir``, ``--job-bookmark-option`` ...): unknown ones are ignored.  The job
logic is ``cloud_pipeline.runner.run_pipeline`` with ``jobs=(job,)``: the script stages new landing
files, rebuilds that job's table from the tables the earlier jobs committed, reconciles and
commits the lake's pipeline state atomically, exactly as ``stedi pipeline run --jobs JOB`` does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cloud_pipeline.aws.salt import job_salt
from cloud_pipeline.config import JOB_ORDER, JOB_OUTPUT, Job, PipelineOptions
from cloud_pipeline.runner import PipelineRun, RunResult
from cloud_pipeline.storage.s3_cluster import open_for_spark, split_s3_url
from cloud_pipeline.transforms.schemas import table_schema
from stedi.contract import TABLES_BY_NAME
from stedi.errors import UserError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from cloud_pipeline.storage.lock import WriterLock

log = logging.getLogger(__name__)

#: Required job parameters, named as Glue's ``getResolvedOptions`` wants them.
REQUIRED = ("JOB_NAME", "lake")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Glue-style ``--KEY value`` arguments; extra arguments (Glue's own) are tolerated."""
    parser = argparse.ArgumentParser(description="Run one STEDI pipeline job (Glue or spark-submit).")
    parser.add_argument("--JOB_NAME", required=True, help="Glue passes the job's name.")
    parser.add_argument("--lake", required=True, help="Lake folder, s3://bucket/prefix or s3a://bucket/prefix.")
    parser.add_argument("--consent", default="all", choices=("all", "as-of"))
    parser.add_argument("--tolerance_ms", type=int, default=0)
    parser.add_argument("--format", default="parquet", choices=("parquet", "json"))
    parser.add_argument("--database", default=None,
                        help="Glue database whose table of this job moves to the new version (deploy sets it).")
    # The customerKey salt's secret, by name or ARN (deploy sets one); the value is never an argument.
    parser.add_argument("--salt_secret_id", default=None, help="Secrets Manager secret holding the salt.")
    parser.add_argument("--salt_parameter", default=None, help="SSM SecureString parameter holding the salt.")
    args, extra = parser.parse_known_args(list(argv))
    if extra:
        log.info("ignoring arguments not meant for the job: %s", " ".join(extra))
    return args


class OneJobRun(PipelineRun):
    """A run of one job on a lake where later jobs may never have run yet (a first deployment).

    The runner reads the current table of every job it skips; a table of a job AFTER this one
    feeds nothing this job computes, so when it was never built it reads as empty instead of
    failing.  A missing table of an EARLIER job still fails: the jobs ran out of order.
    """

    def _table(self, job: Job) -> DataFrame:
        later = JOB_ORDER.index(job.name) > max(JOB_ORDER.index(j) for j in self.options.jobs)
        if later and job.output not in self.state.tables:
            return self.spark.createDataFrame([], table_schema(TABLES_BY_NAME[job.output]))
        return super()._table(job)


def run_job(spark: SparkSession, lake: str, options: PipelineOptions, lock: WriterLock | None = None) -> RunResult:
    # An S3 lake is read by Spark itself where it can (Glue, EMR, S3A jars), else via a local cache.
    store = open_for_spark(spark, lake)
    store.writer_lock = lock  # each commit checks the lake's writer lock is still this job's
    run = OneJobRun(spark, store, options)
    if lock is not None:
        lock.update(run.run_id)
    return run.run()


def _lake_url(lake: str) -> str:
    """``s3a://b/p`` (what a cluster's Spark reads) as ``s3://b/p`` (what boto3 and the catalog take)."""
    s3 = split_s3_url(lake)
    return f"s3://{s3[1]}/{s3[2]}" if s3 else lake


def _glue() -> Any | None:
    """The awsglue modules when running on Glue, else None."""
    try:
        from awsglue.context import GlueContext  # type: ignore[import-not-found]
        from awsglue.job import Job  # type: ignore[import-not-found]
        from awsglue.utils import getResolvedOptions  # type: ignore[import-not-found]
    except ImportError:
        return None
    return GlueContext, Job, getResolvedOptions


def _configured(spark: SparkSession) -> SparkSession:
    """Glue's session with the pipeline's SQL settings, as the local sessions have them."""
    from cloud_pipeline.session import PIPELINE_SQL_CONF

    for key, value in PIPELINE_SQL_CONF.items():
        spark.conf.set(key, value)
    return spark


def job_options(job: str, args: argparse.Namespace, session: Any = None) -> PipelineOptions:
    """The run's options; the salt is read from its secret first, so a job without a usable salt
    stops before Spark starts (UserError)."""
    return PipelineOptions(
        consent=args.consent,
        tolerance_ms=args.tolerance_ms,
        format=args.format,
        salt=job_salt(args.salt_secret_id, args.salt_parameter, session),
        jobs=(job,),
    )


def main(job: str, argv: Sequence[str] | None = None) -> int:
    """Run ``job`` with the arguments (default ``sys.argv``); returns the process exit code."""
    if job not in JOB_ORDER:
        raise ValueError(f"unknown job {job!r}; jobs are: {', '.join(JOB_ORDER)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        options = job_options(job, args)
    except UserError as exc:
        # One clear line in the job's error log (stderr) and a failed run, not a traceback.
        log.error("job %s refuses to run: %s", job, exc)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    glue = _glue()
    glue_job = None
    if glue is not None:
        glue_context_cls, job_cls, get_resolved_options = glue
        from pyspark.context import SparkContext

        resolved = get_resolved_options(["script", *argv], list(REQUIRED))
        glue_context = glue_context_cls(SparkContext.getOrCreate())
        spark = _configured(glue_context.spark_session)
        glue_job = job_cls(glue_context)
        glue_job.init(resolved["JOB_NAME"], resolved)
    else:
        from pyspark.sql import SparkSession

        spark = _configured(SparkSession.builder.appName(args.JOB_NAME).getOrCreate())
    log.info("job %s (%s) on %s", job, args.JOB_NAME, args.lake)
    from cloud_pipeline.runner import new_run_id
    from cloud_pipeline.storage.lock import writer_lock
    from stedi.lake import open_lake

    try:
        # One writer per lake, as for `stedi pipeline run`: a laptop run or another job holding
        # the lake makes this job fail at once (exit 4) rather than commit over it.
        with writer_lock(open_lake(_lake_url(args.lake)), new_run_id(), f"glue job {job}") as lock:
            result = run_job(spark, args.lake, options, lock)
            if args.database:
                from cloud_pipeline.aws.catalog import refresh_tables

                refresh_tables(_lake_url(args.lake), args.database, [JOB_OUTPUT[job]])
    except UserError as exc:
        log.error("job %s stopped: %s", job, exc)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if glue_job is not None:
        glue_job.commit()
    log.info("job %s committed run %s: %s", job, result.run_id, result.tables)
    if not result.balanced:
        log.error("job %s: reconciliation does not balance: %s", job, result.record.reconciliation)
        return 1
    return 0
