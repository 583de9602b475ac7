"""Spark sessions for running the pipeline on one machine.

Start-up dominates small runs (a local session takes seconds before any data is read), so a
*quick-start* session trades peak speed for less warm-up: the JVM compiles with C1 only and
uses the serial collector (far less JIT and GC work on a laptop's few cores), whole-stage code
generation is off (compiling each plan costs more than it saves on small data; an incremental
run on a large lake turns it on once it has staged, ``compiled_for_lake``) and adaptive query
execution is off (re-planning small stages costs more than it saves).  Large lakes get the full
optimising JVM and planner, with a heap and collector chosen for peak memory (see
``LARGE_LAKE_DRIVER_MEMORY``).  ``quick_start_for`` picks by landing size: the lake's, or for an
incremental pipeline run the size of what it stages (``PipelineStore.bytes_to_stage``).  Every session maps the
class archive that ``stedi pipeline warm-up`` records, when there is one (``class_archive``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Landing data below this size runs in a quick-start session.
QUICK_START_MAX_BYTES = 256 * 1024 * 1024
#: The JVM heap of a session for a large lake.  Every job streams (Parquet in and out,
#: aggregations and sorts spill to disk when they must), nothing is collected to the driver, and
#: the only cached frame is the customers' latest records, so the heap is a working buffer and a
#: full one is the largest part of the process's memory.  Measured at 100x (benchmarks/pipeline.py's
#: sampler and the JVM's native memory tracking, 2 cores): a 4g heap peaked at 5.6 GB (old sampler);
#: Spark's default 1g at 1.64 GB, of which the heap 1,024 MB, G1's own structures 95 MB, the class
#: archive 189 MB, direct buffers 57 MB, code 62 MB; 768m with the parallel collector (below) at
#: 1.34-1.39 GB; 640m at 1.25-1.27 GB, against the straightforward port (1g, G1, one job per
#: process) at 1.37-1.44 GB.  640m and 768m side by side: the same wall time (450 s, 447 s on a
#: loaded machine), JVM CPU 231 s and 226 s, collector time 33 s and 31 s.
LARGE_LAKE_DRIVER_MEMORY = "640m"
#: The collector of a large lake's JVM.  G1's remembered sets and card tables took 95 MB beside a
#: 1g heap (NMT "GC"); the parallel collector's took 37-47 MB.  A batch run on a laptop's few cores
#: wants throughput, not G1's short pauses.  (Quick-start sessions use the serial collector.)
LARGE_LAKE_GC = "-XX:+UseParallelGC"
#: SQL settings of every session that runs the pipeline, local or on Glue (``aws/glue/entry.py``).
PIPELINE_SQL_CONF = {
    # Dates in the contract are UTC.
    "spark.sql.session.timeZone": "UTC",
    # A join may keep its sides' partitioning by some of its keys.  The ML join's sides are
    # shuffled by the customer alone (``jobs.machine_learning_curated``), so each of the table's
    # files holds whole customers and a run that replaces a few customers' rows rewrites a few
    # files.  Spark's default (true, since 3.3) shuffles both sides again on every join key: one
    # more shuffle, or the table's customers spread over every file.
    "spark.sql.requireAllClusterKeysForCoPartition": "false",
    # The pipeline caches customer- and batch-sized frames only (``PipelineRun._cache``), each read
    # a few times; compressing every column of a cache as it is built cost more than those reads
    # save.  The customers' classified records at 100x (106,369 rows), built and read twice:
    # 1.21 s compressed, 0.86-0.96 s not (3 tries each, 2 cores).
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
}


def session_running() -> bool:
    """Whether this process already runs Spark (a notebook's or a test's session).

    Callers that find one borrow it and must leave it running.  Checked on the process-wide
    SparkContext: the JVM's *active* session is per thread, so a session started in another
    thread would look absent and be stopped under its owner.
    """
    from pyspark import SparkContext

    return SparkContext._active_spark_context is not None


def quick_start_for(landing_bytes: int) -> bool:
    return landing_bytes < QUICK_START_MAX_BYTES


#: Spark's switch for whole-stage code generation, off in quick-start sessions (``local_session``).
WHOLE_STAGE_CODEGEN = "spark.sql.codegen.wholeStage"


@contextmanager
def compiled_for_lake(spark: SparkSession, landing_bytes: int) -> Iterator[None]:
    """Whole-stage code generation on, for a while, in a quick-start session on a large lake.

    An incremental run on a large lake gets a quick-start session when its delivery is small
    (``PipelineStore.bytes_to_stage``).  Its parse stays interpreted, as it should: the parse's
    generated code takes longer to compile than a small delivery takes to parse.  But its jobs
    then scan tables of the whole lake's size, and those queries gain from compiled code.  On
    copies of one 100x lake after a 1 % delivery, three pairs of runs: 19.8 s against 21.0 s
    (the ML step 1.6-2.2 s against 2.1-2.8 s).  On a 10x lake, whose landing data is below
    ``QUICK_START_MAX_BYTES``, no gain: such a lake is left as it is.  The setting is restored
    afterwards (a borrowed session is left as it was found).  ``landing_bytes``: the size of the
    lake's landing files, as the run listed them to stage (no second listing of an S3 lake).
    """
    before = spark.conf.get(WHOLE_STAGE_CODEGEN)
    if before != "false" or quick_start_for(landing_bytes):
        yield
        return
    spark.conf.set(WHOLE_STAGE_CODEGEN, "true")
    try:
        yield
    finally:
        spark.conf.set(WHOLE_STAGE_CODEGEN, before)


def local_session(
    app_name: str = "stedi",
    cores: int | str = "*",
    shuffle_partitions: int | None = None,
    quick_start: bool = True,
    archive_options: str | None = None,
) -> SparkSession:
    """A local Spark session tuned for laptop-sized lakes: few shuffle partitions, no UI."""
    from pyspark.sql import SparkSession

    from cloud_pipeline import class_archive

    java_options = "-Dlog4j2.level=ERROR"
    # The class archive (cloud_pipeline.class_archive) when recorded; its warm-up passes its own options.
    archive = class_archive.java_options() if archive_options is None else archive_options
    if archive:
        java_options += " " + archive
    if quick_start:
        java_options += " -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    else:
        java_options += " " + LARGE_LAKE_GC
    partitions = shuffle_partitions or (2 if quick_start else 8)
    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.extraJavaOptions", java_options)
        # Landing folders hold thousands of files: list them in the driver, not with a Spark job
        # per read (the parallel listing is meant for remote stores with slow calls).
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "1000000")
        # Many small landing files: pack them into few tasks.
        .config("spark.sql.files.openCostInBytes", str(1024 * 1024))
        # Staging writes one folder per entity: concurrent writers spare the sort a partitioned write needs.
        .config("spark.sql.maxConcurrentOutputFileWriters", "4")
    )
    for key, value in PIPELINE_SQL_CONF.items():
        builder = builder.config(key, value)
    if quick_start:
        builder = builder.config(WHOLE_STAGE_CODEGEN, "false").config(
            "spark.sql.adaptive.enabled", "false"
        )
    else:
        builder = builder.config("spark.driver.memory", LARGE_LAKE_DRIVER_MEMORY)
    return builder.getOrCreate()


def jvm_log_path() -> Path:
    """Where a command's Spark JVM writes its own output unless ``-v`` is given."""
    from stedi.settings import default_home

    return default_home() / "logs" / "spark-jvm.log"


@contextmanager
def _jvm_output_to_log(quiet: bool) -> Iterator[None]:
    """Start the JVM with its stderr in ``jvm_log_path()`` when ``quiet``.

    The JVM inherits this process's file descriptor 2 when PySpark launches it, and prints its
    start-up chatter there before any log4j setting applies ("Using Spark's default log4j
    profile", JDK warnings, "Setting default log level"), and its shutdown lines after.  So
    descriptor 2 points at a log file while the JVM is launched, and is restored at once: this
    process keeps its own stderr, the JVM keeps the file for its whole life.
    """
    if not quiet:
        yield
        return
    path = jvm_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:  # a home that cannot be written: chatter is better than no Spark
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(target, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(target)


#: PySpark 4 loggers that print every analysis error as a JSON line with the whole Java stack,
#: before the exception reaches the command (pyspark/errors/exceptions/base.py, ``_log_exception``).
QUERY_CONTEXT_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


def _quiet_python_side() -> None:
    """py4j's "Closing down clientserver connection" INFO line, and PySpark 4's error echo, off."""
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        from pyspark.logger import PySparkLogger  # PySpark 4; 3.5 (Glue 5) has no such echo
    except ImportError:
        return
    for name in QUERY_CONTEXT_LOGGERS:
        # Made as PySpark makes it (its own logger class), so PySpark finds it and keeps the level.
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)


@contextmanager
def spark_session(app_name: str = "stedi", landing_bytes: int | None = None) -> Iterator[SparkSession]:
    """A Spark session for one command: the one this process already runs (a notebook's, a
    test's) is borrowed and left running; else a local one is started and stopped at the end.

    A started session is a quick-start one unless ``landing_bytes``, the size of the lake's
    landing data, says the lake is large (``quick_start_for``).
    """
    borrowed = session_running()
    quick_start = landing_bytes is None or quick_start_for(landing_bytes)
    # Spark's own chatter only with -v (debug logging): the JVM's output goes to a log file, and
    # py4j's "Closing down clientserver connection" INFO line is dropped.
    quiet = not logging.getLogger().isEnabledFor(logging.DEBUG)
    if quiet:
        _quiet_python_side()
    with _jvm_output_to_log(quiet and not borrowed):
        spark = local_session(app_name=app_name, quick_start=quick_start)
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        if not borrowed:
            spark.stop()
