"""Athena / Glue Data Catalog table definitions of the lake, from the contract and the pipeline's
real layout.

* Landing tables are JSON lines read with ``org.openx.data.jsonserde.JsonSerDe`` over
  ``<entity>/landing/`` (``ignore.malformed.json``: a bad line reads as nulls, as the pipeline
  quarantines it).  Their number columns are declared ``string``: the SerDe skips malformed JSON
  but fails the whole query on a value of the wrong type (``HIVE_BAD_DATA: Error parsing field
  value``), and real landing data holds drifted values (``1655564376361.0``, ``"1655564376361"``);
  as text every line reads, and the pipeline's zones hold the typed values.
* Zone tables are written by the pipeline as immutable versions ``<entity>/<zone>/v-<run_id>/``;
  the lake's state file (``_pipeline/state/pipeline.json``, also mirrored by ``_CURRENT`` pointer
  files) names the current one.  Athena reads every file under a LOCATION, subfolders included,
  and knows no pointer files, so a zone table's LOCATION is the CURRENT VERSION folder: the DDL
  is a snapshot and must be re-applied after each pipeline run (``stedi pipeline deploy`` does so
  with ``UpdateTable``).  A table that was never built points at an empty ``_not_built_yet/``
  folder rather than at the zone folder (which would mix versions).
* Quarantine batches are Parquet under ``_pipeline/quarantine/<run>/table=<landing table>/``:
  the ``quarantine_files`` table reads them all and the ``quarantine`` view recovers the table
  name from each file's path (the pipeline's cleanup removes batches a re-staging superseded).
  Warnings about descriptive fields are laid out the same way under ``_pipeline/warnings/``
  (``warnings_files`` and the ``warnings`` view).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cloud_pipeline.storage.state import STATE_KEY, PipelineState
from stedi.contract import QUARANTINE_FOLDER, QUARANTINE_TABLE, TABLES, WARNINGS_FOLDER, WARNINGS_TABLE, Table
from stedi.errors import UserError

#: Hive / Athena column types of the contract's field types (date_string keeps its "YYYY-MM-DD" text).
HIVE_TYPES = {"string": "string", "long": "bigint", "double": "double", "date_string": "string"}
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
TEXT_INPUT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
QUARANTINE_FILES = "quarantine_files"
#: Columns of the quarantine Parquet files (``table`` is in the folder name, not in the files).
QUARANTINE_COLUMNS = (
    ("rule", "string", "Rule that rejected the line."),
    ("reason", "string", "Which fields broke the rule."),
    ("source_file", "string", "Landing file the line came from."),
    ("line", "string", "The raw line."),
    ("run_id", "string", "Pipeline run that staged it."),
)
WARNINGS_FILES = "warnings_files"
#: Athena / Glue database names: lowercase letters, digits and underscores (Athena's "Names for
#: tables, databases, and columns"), which also keeps them safe to paste into the DDL.
DATABASE_NAME = re.compile(r"[a-z0-9_]{1,255}")
#: Columns of the warnings Parquet files (``table`` is in the folder name, not in the files).
WARNINGS_COLUMNS = (
    ("rule", "string", "wrong_type, not_a_date or missing_field."),
    ("field", "string", "The descriptive field the warning is about."),
    ("reason", "string", "What is wrong and what was kept."),
    ("value", "string", "The raw value, as the line held it."),
    ("source_file", "string", "Landing file the line came from."),
    ("run_id", "string", "Pipeline run that staged it."),
)


def check_database_name(database: str) -> str:
    if not DATABASE_NAME.fullmatch(database):
        raise UserError(f"--database {database!r}: Glue / Athena database names are lowercase letters, digits "
                        "and underscores", hint="e.g. --database stedi")
    return database


@dataclass(frozen=True)
class TableDefinition:
    name: str
    columns: tuple[tuple[str, str, str], ...]  # (name, hive type, comment)
    location: str
    format: str  # json | parquet
    comment: str

    def create_sql(self, database: str) -> str:
        cols = ",\n".join(f"  `{n}` {t} COMMENT '{_quote(c)}'" for n, t, c in self.columns)
        if self.format == "json":
            storage = (
                f"ROW FORMAT SERDE '{JSON_SERDE}'\nWITH SERDEPROPERTIES ('ignore.malformed.json' = 'true')\n"
                f"STORED AS INPUTFORMAT '{TEXT_INPUT}'\nOUTPUTFORMAT '{TEXT_OUTPUT}'"
            )
        else:
            storage = "STORED AS PARQUET"
        return (
            f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{self.name}` (\n{cols}\n)\n"
            f"COMMENT '{_quote(self.comment)}'\n{storage}\nLOCATION '{self.location}';"
        )

    def table_input(self) -> dict[str, Any]:
        """The Glue ``TableInput`` of CreateTable / UpdateTable."""
        if self.format == "json":
            serde = {"SerializationLibrary": JSON_SERDE, "Parameters": {"ignore.malformed.json": "true"}}
            formats = {"InputFormat": TEXT_INPUT, "OutputFormat": TEXT_OUTPUT}
        else:
            serde = {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}}
            formats = {"InputFormat": PARQUET_INPUT, "OutputFormat": PARQUET_OUTPUT}
        return {
            "Name": self.name,
            "Description": self.comment,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": self.format, "EXTERNAL": "TRUE"},
            "StorageDescriptor": {
                "Columns": [{"Name": n, "Type": t, "Comment": c} for n, t, c in self.columns],
                "Location": self.location,
                **formats,
                "SerdeInfo": serde,
            },
        }


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _columns(table: Table) -> tuple[tuple[str, str, str], ...]:
    if table.zone == "landing":
        # Text: a drifted or wrongly typed value must read, not fail the query (module docstring).
        return tuple((f.name, "string", f.doc if f.type in ("string", "date_string") else f"{f.doc} As text.")
                     for f in table.fields)
    return tuple((f.name, HIVE_TYPES[f.type], f.doc) for f in table.fields)


def table_definitions(lake_url: str, state: PipelineState | None = None) -> list[TableDefinition]:
    """Every contract table plus the quarantine files, located in the lake at ``lake_url``.

    ``state`` is the pipeline's state (``load_state``): it names each zone table's current
    version and format; without it zone tables point at an empty not-built-yet folder.
    """
    base = lake_url.rstrip("/") + "/"
    built = state.table_locations() if state is not None else {}
    definitions = []
    for table in TABLES:
        if table.zone == "landing":
            location, fmt = base + table.folder, "json"
        elif table.name in built:
            current = built[table.name]
            location, fmt = base + current.key, current.format
        else:
            location, fmt = f"{base}{table.folder}_not_built_yet/", "parquet"
        definitions.append(TableDefinition(table.name, _columns(table), location, fmt, table.doc))
    definitions.append(
        TableDefinition(QUARANTINE_FILES, QUARANTINE_COLUMNS, base + QUARANTINE_FOLDER, "parquet",
                        "Rejected landing lines, one Parquet batch per staging run.")
    )
    definitions.append(
        TableDefinition(WARNINGS_FILES, WARNINGS_COLUMNS, base + WARNINGS_FOLDER, "parquet",
                        "Warnings about descriptive fields of kept landing lines, one batch per staging run.")
    )
    return definitions


def _batch_view_sql(database: str, view: str, files: str, columns: tuple[tuple[str, str, str], ...]) -> str:
    """A view over batch files with the landing table name taken from each file's path.

    Athena runs views and SELECTs on its Trino engine, which rejects backquoted identifiers
    ("backquoted identifiers are not supported; use double quotes"); only Hive DDL such as
    CREATE EXTERNAL TABLE takes backticks.  So the view quotes with double quotes throughout.
    """
    cols = ", ".join(_trino_name(n) for n, _t, _c in columns)
    return (
        f"CREATE OR REPLACE VIEW {_trino_name(database)}.{_trino_name(view)} AS\n"
        f"SELECT regexp_extract(\"$path\", 'table=([a-z_]+)', 1) AS \"table\", {cols}\n"
        f"FROM {_trino_name(database)}.{_trino_name(files)};"
    )


def _trino_name(name: str) -> str:
    """A Trino (ANSI) quoted identifier: a double quote inside is doubled."""
    return '"' + name.replace('"', '""') + '"'



def quarantine_view_sql(database: str) -> str:
    """The ``quarantine`` view: quarantine files with the landing table name taken from the path."""
    return _batch_view_sql(database, QUARANTINE_TABLE, QUARANTINE_FILES, QUARANTINE_COLUMNS)


def warnings_view_sql(database: str) -> str:
    """The ``warnings`` view, laid out like the quarantine's."""
    return _batch_view_sql(database, WARNINGS_TABLE, WARNINGS_FILES, WARNINGS_COLUMNS)


def load_state(lake_url: str) -> PipelineState | None:
    """The lake's pipeline state, or None before the first run (works for folder and s3:// lakes)."""
    from stedi.lake import open_lake

    lake = open_lake(lake_url)
    if not lake.exists(STATE_KEY):
        return None
    return PipelineState.from_json(lake.get(STATE_KEY))


def ddl_statements(lake_url: str, database: str = "stedi", state: PipelineState | None = None) -> list[str]:
    """Every statement of the Athena script, each ending in ";": database, tables, the two views."""
    parts = [f"CREATE DATABASE IF NOT EXISTS `{database}`;"]
    parts += [d.create_sql(database) for d in table_definitions(lake_url, state)]
    return [*parts, quarantine_view_sql(database), warnings_view_sql(database)]


def ddl_script(lake_url: str, database: str = "stedi", state: PipelineState | None = None) -> str:
    """The whole Athena script: database, every table, the quarantine and warnings views."""
    return "\n\n".join(ddl_statements(lake_url, database, state)) + "\n"
