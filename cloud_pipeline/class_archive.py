"""A class-data-sharing archive of the JVM classes a pipeline run loads, for faster Spark start-up.

Starting a local Spark session spends most of its time loading and verifying some 15,000
classes from Spark's jars, and the first queries of a run load thousands more (Parquet, JSON,
the optimiser).  The JVM can map classes it loaded once from an archive instead (JDK 13+
*dynamic CDS*: ``-XX:ArchiveClassesAtExit`` records, ``-XX:SharedArchiveFile`` maps).  Measured
here, this takes a local session from about 2.8 s to 1.5 s and shortens the first jobs too.

``stedi pipeline warm-up`` (``stedi_app/warm_up.py``: it needs a simulated fleet, so it lives in
the application) records the archive once by running a small pipeline in a child JVM;
``scripts/setup.sh`` calls it.  This module only names the archive and maps it.  The archive is named after the Java runtime and the Spark jars it
was made with, so a new JDK or PySpark simply makes sessions start without it until the next
warm-up (a stale archive is never used: the JVM checks it, and logging is off so that a refusal
can't reach a command's output).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

from stedi.settings import default_cache

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
    return default_cache() / f"spark-classes-{pyspark.__version__}-{digest}.jsa"


def java_options() -> str:
    """JVM options that map the archive when there is one, else nothing."""
    path = archive_path()
    if path is None or not path.is_file():
        return ""
    return f"-XX:SharedArchiveFile={path} -Xlog:disable"
