"""The Glue Data Catalog follows the lake: after a commit, each table's LOCATION moves to the
version folder the lake's state now names (Glue ``UpdateTable``; ``CreateTable`` for a table the
catalog lacks).

Why move locations rather than re-apply DDL: ``CREATE EXTERNAL TABLE IF NOT EXISTS`` on an
existing table changes nothing, its LOCATION included, and Athena reads every file under a
LOCATION, so a zone table must point at exactly one committed version folder.  Deployed Glue
jobs call :func:`refresh_tables` for their own table after their commit; ``stedi pipeline run
--database NAME`` on an S3 lake calls :func:`sync_catalog` for every table after its commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from cloud_pipeline.aws.aws_errors import aws_errors
from cloud_pipeline.aws.ddl import check_database_name, load_state, table_definitions

log = logging.getLogger(__name__)

_COMPARED = ("Columns", "Location", "InputFormat", "OutputFormat", "SerdeInfo")


def norm(value: Any) -> Any:
    """Drop empty values AWS adds on read (e.g. Parameters: {}) so they compare equal to ours."""
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [norm(v) for v in value]
    return value


def table_differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    have, want = current.get("StorageDescriptor", {}), wanted["StorageDescriptor"]
    return any(norm(have.get(k)) != norm(want.get(k)) for k in _COMPARED) or (
        current.get("Parameters", {}) != wanted["Parameters"]
    )


@dataclass
class CatalogSync:
    """What one catalog update did, table names per action."""

    created: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # absent, and not ours to create


def sync_catalog(lake_url: str, database: str, names: list[str] | None = None, *, create_missing: bool = True,
                 client: Any = None) -> CatalogSync:
    """Point the catalog tables ``names`` (default: every table of the DDL) at the lake's
    current versions; with ``create_missing`` the database and absent tables are created."""
    import boto3

    done = CatalogSync()
    with aws_errors(f"updating the Glue database {database}"):
        glue = client or boto3.client("glue")
        if create_missing:
            try:
                glue.get_database(Name=database)
            except glue.exceptions.EntityNotFoundException:
                glue.create_database(DatabaseInput={"Name": database, "Description": "STEDI step-trainer lake"})
        for definition in table_definitions(lake_url, load_state(lake_url)):
            if names is not None and definition.name not in names:
                continue
            wanted = definition.table_input()
            try:
                current = glue.get_table(DatabaseName=database, Name=definition.name)["Table"]
            except glue.exceptions.EntityNotFoundException:
                if create_missing:
                    glue.create_table(DatabaseName=database, TableInput=wanted)
                    done.created.append(definition.name)
                else:
                    log.warning("catalog table %s.%s does not exist: run stedi pipeline deploy", database,
                                definition.name)
                    done.missing.append(definition.name)
                continue
            if table_differs(current, wanted):
                glue.update_table(DatabaseName=database, TableInput=wanted)
                done.moved.append(definition.name)
            log.info("catalog table %s.%s at %s", database, definition.name, definition.location)
    return done


def check_catalog(lake_url: str, database: str, client: Any = None) -> None:
    """Before a laptop run with ``--database``: an S3 lake, a valid name, a reachable catalog."""
    import boto3

    from stedi.errors import UserError

    if not lake_url.startswith("s3://"):
        raise UserError(f"--database needs an s3:// lake (Athena reads S3), not {lake_url!r}")
    check_database_name(database)
    with aws_errors(f"reading the Glue database {database}"):
        glue = client or boto3.client("glue")
        try:
            glue.get_database(Name=database)
        except glue.exceptions.EntityNotFoundException:
            log.info("Glue database %s does not exist yet: the run will create it", database)


def refresh_tables(lake_url: str, database: str, names: list[str], client: Any = None) -> list[str]:
    """A deployed job's update: move the existing tables ``names``; returns those that moved."""
    return sync_catalog(lake_url, database, names, create_missing=False, client=client).moved
