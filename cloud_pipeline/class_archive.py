"""A class-data-sharing archive of the JVM classes a pipeline run loads, for faster Spark start-up.

Starting a local Spark session spends most of its time loading and verifying some 15,000
classes from Spark's jars, and the first queries of a run load thousands more (Parquet, JSON,
the optimiser).  The JVM can map classes it loaded once from an archive instead (JDK 13+
*dynamic CDS*: ``-XX:ArchiveClassesAtExit`` records, ``-XX:SharedArchiveFile`` maps).  Measured
here, this takes a local session from about 2.8 s to 1.5 s and shortens the first jobs too.

``stedi pipeline warm-up`` records the archive once by running a small pipeline in a child JVM;
``scripts/setup.sh`` calls it.  The archive is named after the Java runtime and the Spark jars it
was made with, so a new JDK or PySpark simply makes sessions start without it until the next
warm-up (a stale archive is never used: the JVM checks it, and logging is off so that a refusal
can't reach a command's output).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from stedi.settings import default_home

log = logging.getLogger(__name__)


def _java() -> Path | None:
    # The same lookup as Spark's launcher: JAVA_HOME first, then PATH.
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).exists() else None


def archive_path() -> Path | None:
    """Where the archive for this Java runtime and this PySpark lives (None: no Java found)."""
    import pyspark

    java = _java()
    if java is None:
        return None
    jars = Path(pyspark.__file__).parent / "jars"
    stat = java.stat()
    identity = f"{java}|{stat.st_size}|{stat.st_mtime_ns}|{pyspark.__version__}|{jars.stat().st_mtime_ns}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return default_home() / "cache" / f"spark-classes-{pyspark.__version__}-{digest}.jsa"


def java_options() -> str:
    """JVM options that map the archive when there is one, else nothing."""
    path = archive_path()
    if path is None or not path.is_file():
        return ""
    return f"-XX:SharedArchiveFile={path} -Xlog:disable"


def record(timeout_s: float = 600) -> Path:
    """Record the archive by running a small pipeline in a child process; returns its path."""
    path = archive_path()
    if path is None:
        raise RuntimeError("no Java runtime found (set JAVA_HOME or put java on PATH)")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Work beside the archive, so that the finished file is moved into place in one rename.
    with tempfile.TemporaryDirectory(prefix=".warm-up-", dir=path.parent) as work:
        partial = Path(work) / "classes.jsa"
        # The JVM writes the archive as it exits: only a finished child leaves a whole file.
        subprocess.run(
            [sys.executable, "-m", "cloud_pipeline.class_archive", str(partial), work],
            check=True,
            timeout=timeout_s,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if not partial.is_file():
            raise RuntimeError("the JVM did not write a class archive")
        os.replace(partial, path)
    log.info("recorded the Spark class archive %s (%.0f MB)", path, path.stat().st_size / 1e6)
    return path


def _record_in_this_process(archive: str, work: str) -> None:
    """The child: a pipeline run on a small dirty fleet, in a JVM that archives its classes at exit."""
    from cloud_pipeline.catalog import register_tables
    from cloud_pipeline.config import PipelineOptions
    from cloud_pipeline.runner import run_pipeline
    from cloud_pipeline.session import local_session
    from cloud_pipeline.store import PipelineStore
    from simulator.fleet import generate_fleet
    from stedi.lake import FolderLake

    lake = Path(work) / "lake"
    generate_fleet(FolderLake(lake), 20, seed=1, dirty=True)
    spark = local_session("stedi-warm-up", archive_options=f"-XX:ArchiveClassesAtExit={archive} -Xlog:disable")
    run_pipeline(spark, str(lake), PipelineOptions())
    # What `stedi query` loads besides.
    register_tables(spark, PipelineStore.open(str(lake)))
    spark.sql("SELECT count(*) FROM machine_learning_curated").collect()
    spark.stop()


if __name__ == "__main__":
    _record_in_this_process(sys.argv[1], sys.argv[2])
