"""All lake I/O of the pipeline in one place: landing files, staging, zones, state, runs.

Works on a folder lake (Spark reads and writes local paths); an S3 lake is opened as a local
cache that publishes back (``cloud_pipeline/storage/s3_cache.py``).  Zones are versioned: a run writes
each table to a new folder ``<entity>/<zone>/v-<run id>/`` and the run commits by replacing one
small JSON file, ``_pipeline/state/pipeline.json``, which names the current version of every
table.  A run that fails or is killed before that point leaves the previous state, and so every
previous table, untouched; the folders it wrote are orphans that the next run deletes.  After
the commit each table folder also gets a ``_CURRENT`` pointer naming its version, for readers
that do not read the state file.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud_pipeline.transforms.damaged_files import check_gzip
from cloud_pipeline.transforms.schemas import quarantine_schema, staging_schema, table_schema
from stedi.contract import (
    LANDING_TABLES,
    QUARANTINE_FOLDER,
    RUNS_FOLDER,
    STATE_FOLDER,
    TABLES_BY_NAME,
    is_landing_file,
)
from stedi.lake import FolderLake, LakeError, LakeObject, open_lake

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

STATE_KEY = STATE_FOLDER + "pipeline.json"
STAGING_FOLDER = "_pipeline/staging/"
POINTER_NAME = "_CURRENT"
STATE_VERSION = 1
ENTITIES = tuple(t.entity for t in LANDING_TABLES)


def empty_state() -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "last_run": None,
        "files": {e: {} for e in ENTITIES},
        "staging": {e: [] for e in ENTITIES},
        "quarantine": {e: [] for e in ENTITIES},
        # Rows per quarantine rule (and "accepted") of each staging batch, counted when staged.
        "counts": {e: {} for e in ENTITIES},
        "tables": {},
    }


def _is_visible(key: str) -> bool:
    # Readers ignore names starting with "." or "_" anywhere in the path (temp files, markers).
    return not any(part.startswith((".", "_")) for part in key.split("/"))


class PipelineStore:
    """The pipeline's view of a folder lake."""

    def __init__(self, lake: FolderLake):
        self.lake = lake
        self.root: Path = lake.root

    @classmethod
    def open(cls, url: str) -> PipelineStore:
        lake = open_lake(url)
        if not isinstance(lake, FolderLake):
            # An S3 lake runs on a local cache that commits by publishing (cloud_pipeline/storage/s3_cache.py).
            from cloud_pipeline.storage.s3_cache import open_store

            return open_store(url)
        return cls(lake)

    def path(self, key: str) -> str:
        return str(self.root / key)

    # --- landing ---------------------------------------------------------------------------

    def landing_files(self, entity: str) -> list[LakeObject]:
        folder = f"{entity}/landing/"
        return [
            o
            for o in self.lake.list(folder)
            if is_landing_file(o.key) and _is_visible(o.key[len(folder):])
        ]

    # --- state -----------------------------------------------------------------------------

    def load_state(self) -> dict[str, Any]:
        if not self.lake.exists(STATE_KEY):
            return empty_state()
        state: dict[str, Any] = json.loads(self.lake.get(STATE_KEY))
        if state.get("version") != STATE_VERSION:
            raise LakeError(f"{STATE_KEY} has state version {state.get('version')}, expected {STATE_VERSION}")
        return state

    def commit(self, state: dict[str, Any]) -> None:
        """The commit point of a run: one atomic file replace.  Then pointers, then cleanup."""
        self.lake.put(STATE_KEY, json.dumps(state, indent=2, sort_keys=True).encode())
        for name, info in state["tables"].items():
            folder = TABLES_BY_NAME[name].folder
            self.lake.put(folder + POINTER_NAME, (info["version"] + "\n").encode())
        self.cleanup(state)

    def cleanup(self, state: dict[str, Any]) -> None:
        """Delete table versions, staging and quarantine batches the state does not name."""
        keep = {TABLES_BY_NAME[n].folder + info["version"] for n, info in state["tables"].items()}
        for table in TABLES_BY_NAME.values():
            if table.zone == "landing":
                continue
            folder = self.root / table.folder
            if folder.is_dir():
                for child in folder.iterdir():
                    if child.is_dir() and child.name.startswith("v-") and f"{table.folder}{child.name}" not in keep:
                        shutil.rmtree(child, ignore_errors=True)
                        log.debug("removed old version %s%s", table.folder, child.name)
        for base, listed in ((STAGING_FOLDER, state["staging"]), (QUARANTINE_FOLDER, state["quarantine"])):
            folder = self.root / base
            if not folder.is_dir():
                continue
            for batch in folder.iterdir():
                if not batch.is_dir():
                    continue
                users = [e for e in ENTITIES if batch.name in listed.get(e, [])]
                if not users:
                    shutil.rmtree(batch, ignore_errors=True)
                    continue
                for part in batch.iterdir():
                    # entity=<e> or table=<e>_landing: drop parts of entities that re-staged since.
                    if part.is_dir() and not any(part.name in (f"entity={e}", f"table={e}_landing") for e in users):
                        shutil.rmtree(part, ignore_errors=True)

    def save_run(self, run_id: str, record: dict[str, Any]) -> str:
        key = f"{RUNS_FOLDER}{run_id}.json"
        self.lake.put(key, json.dumps(record, indent=2, sort_keys=True).encode())
        return key

    def runs(self) -> list[dict[str, Any]]:
        return [json.loads(self.lake.get(o.key)) for o in self.lake.list(RUNS_FOLDER) if o.key.endswith(".json")]

    # --- staging and quarantine ------------------------------------------------------------

    def read_landing_lines(self, spark: SparkSession, keys: list[str]) -> DataFrame:
        """Raw lines of the given landing files, with the key each came from and, for what could
        be recovered of a damaged file, ``_damage`` (see ``cloud_pipeline/transforms/damaged_files.py``)."""
        from pyspark.sql import functions as F
        from pyspark.sql.types import BinaryType, StringType, StructField, StructType

        damaged = {k: d for k in keys if k.endswith(".gz") and (d := check_gzip(self.lake.get(k))) is not None}
        sound = [k for k in keys if k not in damaged]
        parts = []
        if sound:
            lines = spark.read.text([self.path(k) for k in sound])
            # Spark names the file as a URI (file:/root/key, percent-encoded): decode it back to the
            # lake key ("+" is protected first, or the decoder would turn it into a space).
            uri = F.url_decode(F.regexp_replace(F.col("_metadata.file_path"), r"\+", "%2B"))
            source = F.regexp_replace(uri, self.source_pattern(), "")
            parts.append(lines.select(F.col("value"), source.alias("_source"), F.lit(None).cast("string").alias("_damage")))
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
            parts.append(recovered.select(F.col("b").cast("string").alias("value"), "_source", "_damage"))
        return reduce(lambda a, b: a.unionByName(b), parts)

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
        return self.path(f"{QUARANTINE_FOLDER}{batch}/table={entity}_landing")

    def read_staging(self, spark: SparkSession, entity: str, batches: list[str]) -> DataFrame | None:
        paths = [self.staging_path(entity, b) for b in batches]
        paths = [p for p in paths if self.folder_exists(p)]
        if not paths:
            return None
        schema = staging_schema(TABLES_BY_NAME[f"{entity}_landing"])
        return spark.read.schema(schema).parquet(*paths)

    def read_quarantine(self, spark: SparkSession, state: dict[str, Any]) -> DataFrame:
        from functools import reduce

        from pyspark.sql import functions as F

        parts = []
        schema = quarantine_schema()
        file_schema = type(schema)([f for f in schema.fields if f.name != "table"])
        for entity in ENTITIES:
            paths = [self.quarantine_path(entity, b) for b in state["quarantine"].get(entity, [])]
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

    def read_table(self, spark: SparkSession, name: str, state: dict[str, Any]) -> DataFrame:
        info = state["tables"].get(name)
        if info is None:
            raise LakeError(f"table {name} has not been built yet: run `stedi pipeline run` first")
        path = self.path(TABLES_BY_NAME[name].folder + info["version"])
        schema = table_schema(TABLES_BY_NAME[name])
        if info["format"] == "json":
            return spark.read.schema(schema).json(path)
        return spark.read.schema(schema).parquet(path)

    def read_landing_table(self, spark: SparkSession, entity: str) -> DataFrame:
        """A landing table as Athena would show it: every file, explicit schema, bad values null."""
        table = TABLES_BY_NAME[f"{entity}_landing"]
        keys = [o.key for o in self.landing_files(entity)]
        if not keys:
            return spark.createDataFrame([], table_schema(table))
        # A damaged .json.gz file shows what Spark can read of it instead of failing the query;
        # the pipeline's own read accounts for its rest (cloud_pipeline/transforms/damaged_files.py).
        reader = spark.read.schema(table_schema(table)).option("ignoreCorruptFiles", "true")
        return reader.json([self.path(k) for k in keys])
