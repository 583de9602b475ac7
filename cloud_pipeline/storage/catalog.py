"""The lake's tables by name, like Athena: eight contract tables plus ``quarantine`` and ``warnings``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cloud_pipeline.storage.store import PipelineStore
from cloud_pipeline.transforms.schemas import table_schema
from stedi.contract import QUARANTINE_TABLE, TABLES, WARNINGS_TABLE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def table_frames(spark: SparkSession, store: PipelineStore) -> dict[str, DataFrame]:
    """Every table as a DataFrame: landing read as-is (explicit schema), zones at their current version."""
    state = store.load_state()
    frames: dict[str, DataFrame] = {}
    unbuilt = []
    for table in TABLES:
        if table.zone == "landing":
            frames[table.name] = store.read_landing_table(spark, table.entity)
        elif table.name in state.tables:
            frames[table.name] = store.read_table(spark, table.name, state)
        else:
            unbuilt.append(table.name)
            frames[table.name] = spark.createDataFrame([], table_schema(table))
    if unbuilt:
        # One line, not one per table: a lake no run has built yet lacks them all.
        log.info("not built yet, so they read as empty: %s (run `stedi pipeline run`)", ", ".join(unbuilt))
    frames[QUARANTINE_TABLE] = store.read_quarantine(spark, state)
    frames[WARNINGS_TABLE] = store.read_warnings(spark, state)
    return frames


def register_tables(spark: SparkSession, store: PipelineStore) -> list[str]:
    """Register every table as a temporary view under its name; returns the names."""
    names = []
    for name, frame in table_frames(spark, store).items():
        frame.createOrReplaceTempView(name)
        names.append(name)
    return names
