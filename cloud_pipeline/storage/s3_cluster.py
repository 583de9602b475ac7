"""The pipeline on a cluster whose Spark reads S3 itself (Glue, EMR, any Spark with the S3A jars).

There the data goes straight between Spark and S3: landing files, staging and quarantine
batches and table versions are read and written as ``s3://`` or ``s3a://`` paths by the
executors, while the small files (state, ``_CURRENT`` pointers, run records, listings, cleanup)
go through boto3 (``stedi.lake.S3Lake``).  The commit protocol is the folder lake's: versions
under new prefixes, then the state file, then the pointers, then the cleanup.

A Spark without an S3 file system (a laptop: the S3A jars are not on PyPI) gets the local cache
of ``cloud_pipeline/storage/s3_cache.py`` instead; ``open_for_spark`` chooses.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from cloud_pipeline.storage.s3_cache import delete_objects, open_store, unnamed_objects
from cloud_pipeline.storage.state import PipelineState
from cloud_pipeline.storage.store import PipelineStore
from stedi.lake import S3Lake

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

#: URL schemes Spark may name S3 with: ``s3`` (EMRFS on EMR and Glue), ``s3a`` (Hadoop's S3A).
S3_SCHEMES = ("s3", "s3a")


def split_s3_url(url: str) -> tuple[str, str, str] | None:
    """``(scheme, bucket, prefix)`` of an ``s3://`` or ``s3a://`` URL, else None."""
    parsed = urlparse(url)
    if parsed.scheme not in S3_SCHEMES:
        return None
    return parsed.scheme, parsed.netloc, parsed.path.strip("/")


def spark_filesystem(spark: SparkSession, scheme: str) -> str | None:
    """The Hadoop file system class this Spark uses for ``scheme://`` paths, or None if it has none."""
    sc = spark.sparkContext
    try:
        cls = sc._jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass(  # type: ignore[union-attr]
            scheme, sc._jsc.hadoopConfiguration()  # type: ignore[union-attr]
        )
    except Exception:  # py4j's Java errors: no implementation configured, or its class is missing
        return None
    return str(cls.getName())


def spark_s3_scheme(spark: SparkSession, preferred: str = "s3a") -> str | None:
    """The scheme this Spark can read S3 with, ``preferred`` first; None when it cannot."""
    for scheme in dict.fromkeys((preferred, *S3_SCHEMES)):
        if spark_filesystem(spark, scheme) is not None:
            return scheme
    return None


class ClusterStore(PipelineStore):
    """The pipeline's view of an S3 lake that Spark reads and writes directly."""

    #: S3 has no hard links and Spark writes s3a:// directly: every run rebuilds its tables here.
    appends = False

    def __init__(self, lake: S3Lake, scheme: str = "s3a"):
        if scheme not in S3_SCHEMES:
            raise ValueError(f"scheme must be one of {S3_SCHEMES}, not {scheme!r}")
        # Only the Lake protocol's methods (list, get, put, delete, exists) are used on it.
        self.lake = lake  # type: ignore[assignment]
        self.s3 = lake
        self.scheme = scheme
        self.base = f"{scheme}://{lake.bucket}/{lake.prefix}"
        self.writer_lock = None  # set by the Glue entry, which holds the lake's writer lease

    def path(self, key: str) -> str:
        return self.base + key

    def source_pattern(self) -> str:
        # Spark may report s3:// or s3a:// (or s3n://) whatever scheme the path was given with.
        return r"^s3[an]?://\Q" + f"{self.s3.bucket}/{self.s3.prefix}" + r"\E"

    def folder_exists(self, path: str) -> bool:
        if not path.startswith(self.base):
            raise ValueError(f"{path} is not in the lake {self.base}")
        prefix = self.s3.prefix + path[len(self.base):].rstrip("/") + "/"
        found = self.s3.client.list_objects_v2(Bucket=self.s3.bucket, Prefix=prefix, MaxKeys=1)
        return int(found.get("KeyCount", 0)) > 0

    def cleanup(self, state: PipelineState) -> None:
        doomed = unnamed_objects(self.s3, state)
        if doomed:
            log.info("deleting %d object(s) of old or orphaned versions and batches from %s", len(doomed), self.base)
        delete_objects(self.s3, doomed)


def open_for_spark(spark: SparkSession, url: str) -> PipelineStore:
    """The store a Spark session should run on: a folder lake as it is; an S3 lake directly when
    this Spark reads S3 (cluster mode), else through the local cache."""
    parts = split_s3_url(url)
    if parts is None:
        return open_store(url)
    scheme, bucket, prefix = parts
    lake = S3Lake(bucket, prefix)
    found = spark_s3_scheme(spark, scheme)
    if found is not None:
        log.info("Spark reads S3 itself (%s:// via %s): %s runs in cluster mode", found,
                 spark_filesystem(spark, found), lake.url)
        return ClusterStore(lake, found)
    log.info("this Spark has no S3 file system: %s runs on a local cache", lake.url)
    return open_store(lake.url)
