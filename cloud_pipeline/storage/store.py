"""All lake I/O of the pipeline in one place: landing files, staging, zones, state, runs.

Works on a folder lake (Spark reads and writes local paths); an S3 lake is opened as a local
cache that publishes back (``open_store`` in ``cloud_pipeline/storage/s3_cache.py`` opens either
kind).  Zones are versioned: a run writes each table to a new folder ``<entity>/<zone>/v-<run id>/``
and the run commits by replacing one small JSON file, ``_pipeline/state/pipeline.json`` (read and
written by ``cloud_pipeline/storage/state.py``), which names the current version of every table.  A run that fails or is killed before that point leaves the previous state, and so every
previous table, untouched; the folders it wrote are orphans that the next run deletes.  After
the commit each table folder also gets a ``_CURRENT`` pointer naming its version, for readers
that do not read the state file, and versions older than the one just replaced are deleted (that
one stays until the next commit, for readers that looked the table up before this one).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud_pipeline.storage.lock import WriterLock
from cloud_pipeline.storage.state import (
    ENTITIES,
    HELD_BACK_PREFIX,
    STATE_KEY,
    HeldBackIndex,
    PipelineState,
    RunRecord,
    dump_json,
    run_records,
)
from cloud_pipeline.transforms.damaged_files import check_gzip
from cloud_pipeline.transforms.landing import landing_as_read
from cloud_pipeline.transforms.schemas import (
    landing_text_schema,
    quarantine_schema,
    staging_schema,
    table_schema,
    warnings_schema,
)
from stedi.contract import (
    QUARANTINE_FOLDER,
    RUNS_FOLDER,
    STAGING_FOLDER,
    TABLES,
    TABLES_BY_NAME,
    WARNINGS_FOLDER,
    is_landing_file,
)
from stedi.lake import FolderLake, LakeError, LakeObject

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)

POINTER_NAME = "_CURRENT"
#: The most data files a version made by appending may hold; a run that would go past it rebuilds
#: the table instead (a rebuild writes as many files as Spark's partitions, a handful on a small
#: lake).  Each append adds one file, so this is about two months of daily runs between rebuilds;
#: every file costs a reader one more open (an S3 GET for Athena) and Parquet footers are read per
#: file, so past a few dozen small files a reader pays more for opening than for reading.
MAX_APPENDED_FILES = 64
ZONE_TABLES = tuple(t for t in TABLES if t.zone != "landing")


def read_as_landing(folder: str, key: str) -> bool:
    """Whether the pipeline reads ``key`` as a landing file of ``folder``.

    Readers ignore names starting with "." or "_" anywhere under the folder (temp files, markers).
    """
    return is_landing_file(key) and not any(part.startswith((".", "_")) for part in key[len(folder):].split("/"))


def ignored_landing_file(folder: str, key: str) -> bool:
    """A file in a landing folder that the pipeline skips because of its name (a ``.txt`` or ``.csv``
    copied in by hand), as opposed to hidden and marker files (names starting with "." or "_")."""
    return not is_landing_file(key) and not any(p.startswith((".", "_")) for p in key[len(folder):].split("/"))


def changed_or_vanished(seen: dict[str, str], objects: list[LakeObject]) -> list[str]:
    """The staged landing files (``seen``: key -> ETag) that changed or are gone from ``objects``:
    an entity with one is staged again from scratch (``PipelineRun.stage``)."""
    current = {o.key: o.etag for o in objects}
    return [k for k, etag in seen.items() if current.get(k) != etag]


def unnamed(state: PipelineState, key: str) -> bool:
    """Whether ``key`` (a folder, ending in "/", or an object in one) lies in a table version, a
    staging or quarantine batch, or an entity's part of a batch that ``state`` does not name.

    That is what a commit deletes: versions older than the one the current version replaced
    (``TableVersion.previous``, kept until the next commit), orphans of failed runs, and the parts of a
    batch whose entity re-staged since (``entity=<e>`` in staging, ``table=<e>_landing`` in
    quarantine).  Anything else (landing, the state, pointers, run records, a batch's own marker
    files) is not for it to judge, and is kept.
    """
    if key.startswith(HELD_BACK_PREFIX):
        return key != state.held_back
    for table in ZONE_TABLES:
        if key.startswith(table.folder):
            head, in_folder, _ = key[len(table.folder):].partition("/")
            current = state.tables.get(table.name)
            return bool(in_folder) and head.startswith("v-") and (current is None or head not in current.kept_versions())
    for base, listed in state.batches():
        if key.startswith(base):
            batch, _, rest = key[len(base):].partition("/")
            users = [e for e, batches in listed.items() if batch in batches]
            part, in_part, _ = rest.partition("/")
            return not users or (bool(in_part) and part not in _parts_of(users))
    return False


def _parts_of(entities: list[str]) -> set[str]:
    # One staging batch holds every entity it parsed, a quarantine or warnings batch every one with some.
    return {f"entity={e}" for e in entities} | {f"table={e}_landing" for e in entities}


class PipelineStore:
    """The pipeline's view of a folder lake."""

    def __init__(self, lake: FolderLake):
        self.lake = lake
        self.root: Path = lake.root
        #: The lake's writer lock, while a writer holds it: ``commit`` checks it is still held.
        self.writer_lock: WriterLock | None = None

    def path(self, key: str) -> str:
        return str(self.root / key)

    # --- landing ---------------------------------------------------------------------------

    def landing_files(self, entity: str) -> list[LakeObject]:
        folder = f"{entity}/landing/"
        return [o for o in self.lake.list(folder) if read_as_landing(folder, o.key)]

    def ignored_landing_files(self) -> list[str]:
        """Files in the landing folders that no run reads, by name (see ``ignored_landing_file``)."""
        folders = [f"{e}/landing/" for e in ENTITIES]
        return [o.key for f in folders for o in self.lake.list(f) if ignored_landing_file(f, o.key)]

    def landing_bytes(self) -> int:
        """The size of every landing file: it tells how much Spark a command needs."""
        return sum(o.size for e in ENTITIES for o in self.landing_files(e))

    def bytes_to_stage(self, state: PipelineState) -> int:
        """The size of the landing files an incremental run would stage (``PipelineRun.stage``):
        the unseen ones, and every file of an entity one of whose staged files changed or
        vanished (that entity is staged again from scratch)."""
        total = 0
        for entity in ENTITIES:
            objects = self.landing_files(entity)
            seen = {} if changed_or_vanished(state.files[entity], objects) else state.files[entity]
            total += sum(o.size for o in objects if o.key not in seen)
        return total

    # --- state -----------------------------------------------------------------------------

    def load_state(self) -> PipelineState:
        if not self.lake.exists(STATE_KEY):
            return PipelineState()
        return PipelineState.from_json(self.lake.get(STATE_KEY))

    def commit(self, state: PipelineState) -> None:
        """The commit point of a run: one atomic file replace.  Then pointers, then cleanup."""
        self.check_writer()
        self.lake.put(STATE_KEY, state.to_json())
        for name, table in state.tables.items():
            self.lake.put(TABLES_BY_NAME[name].folder + POINTER_NAME, (table.version + "\n").encode())
        self.cleanup(state)

    def check_writer(self) -> None:
        """Before a commit: the writer lock, when one is held, must still be this writer's."""
        if self.writer_lock is not None:
            self.writer_lock.ensure_held()

    def cleanup(self, state: PipelineState) -> None:
        """Delete table versions, staging, quarantine and warnings batches the state does not name."""
        for table in ZONE_TABLES:
            for version in self._folders(table.folder):
                if unnamed(state, version):
                    shutil.rmtree(self.root / version, ignore_errors=True)
                    log.debug("removed old version %s", version)
        for obj in self.lake.list(HELD_BACK_PREFIX):
            if unnamed(state, obj.key):
                self.lake.delete(obj.key)
        for base, _listed in state.batches():
            for batch in self._folders(base):
                if unnamed(state, batch):
                    shutil.rmtree(self.root / batch, ignore_errors=True)
                    continue
                for part in self._folders(batch):
                    if unnamed(state, part):
                        shutil.rmtree(self.root / part, ignore_errors=True)

    def _folders(self, folder: str) -> list[str]:
        """The sub-folders of a folder of the lake, as keys ending in "/"."""
        path = self.root / folder
        return [f"{folder}{child.name}/" for child in path.iterdir() if child.is_dir()] if path.is_dir() else []

    def write_held_back(self, run_id: str, index: HeldBackIndex) -> str:
        """Write a run's held-back index (before its commit names it); returns its key."""
        key = f"{HELD_BACK_PREFIX}{run_id}.json"
        self.lake.put(key, index.to_json())
        return key

    def read_held_back(self, state: PipelineState) -> HeldBackIndex | None:
        if state.held_back is None or not self.lake.exists(state.held_back):
            return None
        return HeldBackIndex.from_json(self.lake.get(state.held_back))

    def save_run(self, record: RunRecord) -> str:
        return self.save_record(record.run_id, record.to_dict())

    def save_record(self, name: str, record: dict[str, Any]) -> str:
        """Write a record to ``_pipeline/runs/<name>.json``: a run's, or an erase's."""
        key = f"{RUNS_FOLDER}{name}.json"
        self.lake.put(key, dump_json(record))
        return key

    def runs(self) -> list[RunRecord]:
        keys = [o.key for o in self.lake.list(RUNS_FOLDER) if o.key.endswith(".json")]
        return run_records(self.lake.get(k) for k in keys)

    # --- staging and quarantine ------------------------------------------------------------

    def read_landing_lines(self, spark: SparkSession, keys: list[str]) -> DataFrame:
        """Raw lines of the given landing files, with the file each came from and, for what could
        be recovered of a damaged file, ``_damage`` (see ``cloud_pipeline/transforms/damaged_files.py``).

        The file is ``_source``, its lake key, on a recovered line, and ``_file``, the URI Spark
        read it from, on any other: ``landing_key()`` gives the key of either.  Only the few lines
        the quarantine or the warnings name need the key, and turning a URI into one costs two
        regular expressions per line (measured: about 8% of the staging's CPU at 10x when every
        line paid for it).
        """
        from pyspark.sql import functions as F
        from pyspark.sql.types import BinaryType, StringType, StructField, StructType

        damaged = {k: d for k in keys if k.endswith(".gz") and (d := check_gzip(self.lake.get(k))) is not None}
        sound = [k for k in keys if k not in damaged]
        parts = []
        if sound:
            lines = spark.read.text([self.path(k) for k in sound])
            parts.append(lines.select(F.col("value"), F.lit(None).cast("string").alias("_source"),
                                      F.col("_metadata.file_path").alias("_file"),
                                      F.lit(None).cast("string").alias("_damage")))
        if damaged:
            rows = []
            for key, damage in damaged.items():
                log.warning("landing file %s is damaged (%s): %d line(s) recovered, %d quarantined", key,
                            damage.problem, len(damage.lines), len(damage.rest))
                rows += [(line, key, None) for line in damage.lines] + [(r, key, damage.problem) for r in damage.rest]
            schema = StructType([StructField("b", BinaryType()), StructField("_source", StringType()),
                                 StructField("_damage", StringType())])
            # Bytes cast to a string keep invalid UTF-8 as it is, as Spark's text reader does.
            recovered = spark.createDataFrame(rows, schema)
            parts.append(recovered.select(F.col("b").cast("string").alias("value"), "_source",
                                          F.lit(None).cast("string").alias("_file"), "_damage"))
        return reduce(lambda a, b: a.unionByName(b), parts)

    def landing_key(self) -> Column:
        """The lake key of a line of ``read_landing_lines``: its ``_source``, or its ``_file`` decoded."""
        from pyspark.sql import functions as F

        # Spark names the file as a URI (file:/root/key, percent-encoded): decode it back to the
        # lake key ("+" is protected first, or the decoder would turn it into a space).
        uri = F.url_decode(F.regexp_replace(F.col("_file"), r"\+", "%2B"))
        return F.coalesce(F.col("_source"), F.regexp_replace(uri, self.source_pattern(), ""))

    def source_pattern(self) -> str:
        """What to strip from the decoded URI Spark gives a file to get its lake key (a regex)."""
        return r"^file:/*\Q" + str(self.root).lstrip("/") + r"\E/"

    def folder_exists(self, path: str) -> bool:
        # A hook: the S3 store of a cluster (cloud_pipeline/storage/s3_cluster.py) asks S3 instead.
        return Path(path).is_dir()

    def batch_path(self, base: str, batch: str) -> str:
        return self.path(f"{base}{batch}")

    def staging_path(self, entity: str, batch: str) -> str:
        # One staging batch holds every entity it parsed, partitioned by entity (one Spark write).
        return self.path(f"{STAGING_FOLDER}{batch}/entity={entity}")

    def quarantine_path(self, entity: str, batch: str) -> str:
        return self._per_table_path(QUARANTINE_FOLDER, entity, batch)

    def _per_table_path(self, base: str, entity: str, batch: str) -> str:
        # A quarantine or warnings batch is partitioned by landing table (one Spark write).
        return self.path(f"{base}{batch}/table={entity}_landing")

    def read_staging(self, spark: SparkSession, entity: str, batches: list[str]) -> DataFrame | None:
        paths = [self.staging_path(entity, b) for b in batches]
        paths = [p for p in paths if self.folder_exists(p)]
        if not paths:
            return None
        schema = staging_schema(TABLES_BY_NAME[f"{entity}_landing"])
        return spark.read.schema(schema).parquet(*paths)

    def read_quarantine(self, spark: SparkSession, state: PipelineState) -> DataFrame:
        """Every rejected landing line of the current staging batches (the ``quarantine`` table)."""
        return self._read_per_table(spark, QUARANTINE_FOLDER, state.quarantine, quarantine_schema())

    def read_warnings(self, spark: SparkSession, state: PipelineState) -> DataFrame:
        """Every warning about a kept landing line of the current staging batches (``warnings``)."""
        return self._read_per_table(spark, WARNINGS_FOLDER, state.warnings, warnings_schema())

    def _read_per_table(self, spark: SparkSession, base: str, listed: dict[str, list[str]],
                        schema: StructType) -> DataFrame:
        from functools import reduce

        from pyspark.sql import functions as F

        parts = []
        # ``table`` is in the folder name, not in the files.
        file_schema = type(schema)([f for f in schema.fields if f.name != "table"])
        for entity in ENTITIES:
            paths = [self._per_table_path(base, entity, b) for b in listed.get(entity, [])]
            paths = [p for p in paths if self.folder_exists(p)]
            if paths:
                df = spark.read.schema(file_schema).parquet(*paths)
                parts.append(df.select(F.lit(f"{entity}_landing").alias("table"), *file_schema.fieldNames()))
        if not parts:
            return spark.createDataFrame([], schema)
        return reduce(lambda a, b: a.unionByName(b), parts)

    # --- zones -----------------------------------------------------------------------------

    def write_table(self, df: DataFrame, name: str, run_id: str, fmt: str) -> str:
        version = f"v-{run_id}"
        target = self.path(TABLES_BY_NAME[name].folder + version)
        started = time.monotonic()
        writer = df.write.mode("overwrite")
        if fmt == "json":
            # JSON lines like the original Glue tables; nulls stay absent as Glue wrote them.
            writer.json(target)
        else:
            writer.parquet(target)
        log.info("wrote %s (%s) in %.2fs", name, fmt, time.monotonic() - started)
        return version

    #: Whether a run may append to a version by linking the previous version's files into a new
    #: folder: a folder lake (and an S3 lake's local cache) can; the cluster store (s3a://) cannot.
    appends = True

    def data_files(self, name: str, version: str) -> list[str]:
        """The data files of a table version (names only): what a reader reads, markers and
        checksums left out."""
        folder = self.root / TABLES_BY_NAME[name].folder / version
        return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(("_", ".")))

    def append_table(self, df: DataFrame | None, name: str, run_id: str, previous: str,
                     without: frozenset[str] = frozenset()) -> tuple[str, list[str]]:
        """A new version of a Parquet table: ``previous``'s data files but ``without``, hard-linked
        (copied where the file system cannot link), plus ``df``'s rows in one new file named after
        the run.

        Returns the version and the paths of the new files (none when ``df`` is None).  The
        previous version's files are never opened for writing: a link shares them, and the version
        that replaced them is deleted only after a later commit, when nothing names it.
        """
        version = f"v-{run_id}"
        folder = TABLES_BY_NAME[name].folder
        target = self.root / folder / version
        started = time.monotonic()
        new: list[str] = []
        if df is not None:
            # One file per append: the batch is small, and files are what MAX_APPENDED_FILES counts.
            df.coalesce(1).write.mode("overwrite").parquet(str(target))
            for part in sorted(target.iterdir()):
                if part.name.startswith("."):
                    part.unlink()  # Hadoop's checksums: they would not follow the rename
                elif not part.name.startswith("_"):
                    # Prefixed with the run id: a later append links it beside its own new file.
                    renamed = target / f"{run_id}-{part.name}"
                    part.rename(renamed)
                    new.append(str(renamed))
        else:
            target.mkdir(parents=True, exist_ok=True)
            (target / "_SUCCESS").write_bytes(b"")
        linked = copied = 0
        for file in self.data_files(name, previous):
            if file in without:
                continue
            source, link = self.root / folder / previous / file, target / file
            try:
                os.link(source, link)
                linked += 1
            except OSError:  # a file system without hard links (or across devices): copy
                shutil.copy2(source, link)
                copied += 1
        log.info("appended to %s: %d new file(s), %d linked and %d copied from %s (%d left out) in %.2fs",
                 name, len(new), linked, copied, previous, len(without), time.monotonic() - started)
        return version, new

    def read_table(self, spark: SparkSession, name: str, state: PipelineState) -> DataFrame:
        current = state.tables.get(name)
        if current is None:
            raise LakeError(f"table {name} has not been built yet: run `stedi pipeline run` first")
        path = self.path(TABLES_BY_NAME[name].folder + current.version)
        schema = table_schema(TABLES_BY_NAME[name])
        if current.format == "json":
            return spark.read.schema(schema).json(path)
        return spark.read.schema(schema).parquet(path)

    def read_landing_table(self, spark: SparkSession, entity: str) -> DataFrame:
        """A landing table for reading by hand: every file, a row per line, the contract's types with
        the lossless coercions applied and bad values null (``landing.landing_as_read``)."""
        table = TABLES_BY_NAME[f"{entity}_landing"]
        keys = [o.key for o in self.landing_files(entity)]
        if not keys:
            return spark.createDataFrame([], table_schema(table))
        # A damaged .json.gz file shows what Spark can read of it instead of failing the query;
        # the pipeline's own read accounts for its rest (cloud_pipeline/transforms/damaged_files.py).
        # Read as text first: a drifted value (1655564376361.0 in a long field) then reads as its
        # number instead of as NULL.
        text = landing_text_schema(table)
        text = type(text)([f for f in text.fields if f.name in table.field_names])
        reader = spark.read.schema(text).option("ignoreCorruptFiles", "true")
        return landing_as_read(reader.json([self.path(k) for k in keys]), table)
