"""The lake's tables by name in DuckDB, for interactive reads (``stedi query``, the report).

The same tables as ``catalog.register_tables`` registers in Spark, as DuckDB views over the same
files: the current committed version of each zone table (the state names it), the quarantine
and warnings batches the state names, and the landing files read directly with the contract's
columns.  A view reads its files only when a query uses it, so registering all of them costs a
listing of the landing folders and the state file, not a read of the lake.

Landing tables give the rows Spark's ``read_landing_table`` gives (``landing.landing_as_read``):
each field is read as the JSON text it holds, then typed here with the same lossless coercions
and the same NULL for a value its type cannot hold.  DuckDB's own casts are more lenient than
Spark's (``'1.5'`` to BIGINT rounds to 2, ``'0x10'`` and ``'1_000'`` are numbers), so every cast
is guarded by the spelling Spark accepts.  Lines the two readers cannot agree on are listed in
docs/pipeline.md ("Landing tables in DuckDB"); they are all lines the pipeline quarantines.

Nothing here imports Spark, boto3 or pandas: ``stedi query`` must start in a fraction of a second.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cloud_pipeline.storage.state import ENTITIES, PipelineState
from cloud_pipeline.storage.store import PipelineStore
from cloud_pipeline.transforms.damaged_files import read_gzip
from stedi.contract import (
    QUARANTINE_FOLDER,
    QUARANTINE_TABLE,
    TABLES,
    WARNINGS_FOLDER,
    WARNINGS_TABLE,
    Field,
    Table,
)
from stedi.lake import LakeError

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

#: The contract's field types as DuckDB types (``date_string`` keeps its "YYYY-MM-DD" text, as in Spark).
DUCK_TYPES = {"string": "VARCHAR", "long": "BIGINT", "double": "DOUBLE", "date_string": "VARCHAR"}
#: The quarantine and warnings tables' columns, in the order Spark's schemas give them
#: (``transforms/schemas.py``: ``quarantine_schema``, ``warnings_schema``); ``table`` is a folder name.
QUARANTINE_COLUMNS = ("table", "rule", "reason", "source_file", "line", "run_id")
WARNINGS_COLUMNS = ("table", "rule", "field", "reason", "value", "source_file", "run_id")

# Spellings Spark accepts where DuckDB accepts more.  Spark trims whitespace and ISO control
# characters around a number (UTF8String.toLong, Java's Double.parseDouble, BigDecimal after trim).
_TRIM = r"^[\x00-\x20]+|[\x00-\x20]+$"
#: An integer as Spark's string-to-bigint cast reads it (no fraction, no exponent, no "_", no hex).
_INTEGER = r"^[+-]?[0-9]+$"
#: A decimal number as java.math.BigDecimal reads it (what Spark's cast to decimal uses).
_DECIMAL = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
#: Java's Double.parseDouble also takes a float-type suffix ("1.5d", "2f").  (Its hexadecimal
#: floats, "0x1p3", are not matched: docs/pipeline.md.)
_JAVA_DOUBLE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[dDfF]?$"
#: Below 2^53 every integer is exactly a double (landing.py's ``_EXACT_DOUBLE_INTEGER``).
_EXACT_DOUBLE_INTEGER = 2**53


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _list(paths: list[str]) -> str:
    return "[" + ", ".join(_literal(p) for p in paths) + "]"


def landing_column(f: Field) -> str:
    """SQL typing field ``f`` from the JSON text it holds, as ``landing_as_read`` does in Spark."""
    raw = _quote(f.name)
    trimmed = f"regexp_replace({raw}, {_literal(_TRIM)}, '', 'g')"
    if f.type == "long":
        # An integer; else a decimal number (rounded to 6 places, as Spark's decimal(38, 6)) with
        # no fraction, below 2^53.
        n = f"(CASE WHEN regexp_matches({trimmed}, {_literal(_DECIMAL)}) THEN TRY_CAST({trimmed} AS DECIMAL(38, 6)) END)"
        return (f"COALESCE(CASE WHEN regexp_matches({trimmed}, {_literal(_INTEGER)}) THEN TRY_CAST({trimmed} AS BIGINT) END, "
                f"CASE WHEN {n} = floor({n}) AND abs({n}) < {_EXACT_DOUBLE_INTEGER} THEN CAST({n} AS BIGINT) END)")
    if f.type == "double":
        plain = f"regexp_replace({trimmed}, '[dDfF]$', '')"
        d = f"(CASE WHEN regexp_matches({trimmed}, {_literal(_JAVA_DOUBLE)}) THEN TRY_CAST({plain} AS DOUBLE) END)"
        # A number beyond a double's range reads as infinite: not a reading (NULL), as in Spark.
        return f"CASE WHEN isfinite({d}) THEN {d} END"
    return raw


def landing_select(table: Table, source: str) -> str:
    """A landing table over ``source`` (a relation with every field as text), in contract order."""
    columns = ", ".join(f"{landing_column(f)} AS {_quote(f.name)}" for f in table.fields)
    return f"SELECT {columns} FROM {source}"


def _json_columns(fields: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{_literal(name)}: {_literal(kind)}" for name, kind in fields) + "}"


def read_json_lines(paths: list[str], columns: list[tuple[str, str]]) -> str:
    """JSON lines files with explicit columns: a line that is not a JSON object reads as NULLs, as
    in Spark's PERMISSIVE reader (``ignore_errors``), and a ``.gz`` file is decompressed."""
    return (f"read_json({_list(paths)}, format='newline_delimited', columns={_json_columns(columns)}, "
            "ignore_errors=true, maximum_object_size=16777216)")


def _empty(columns: list[tuple[str, str]]) -> str:
    return "SELECT " + ", ".join(f"CAST(NULL AS {kind}) AS {_quote(name)}" for name, kind in columns) + " WHERE false"


def data_files(folder: Path, suffix: str) -> list[str]:
    """The files of a table version or batch folder that Spark reads: names ending in ``suffix``,
    no part of the path under ``folder`` starting with "_" or "." (markers, checksums)."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.rglob(f"*{suffix}")):
        parts = path.relative_to(folder).parts
        if path.is_file() and not any(p.startswith(("_", ".")) for p in parts):
            found.append(str(path))
    return found


@dataclass
class DuckLake:
    """A DuckDB connection with the lake's tables registered as views."""

    con: duckdb.DuckDBPyConnection
    tables: list[str]
    #: Recovered lines of damaged gzip landing files, written here for DuckDB to read.
    scratch: tempfile.TemporaryDirectory[str] | None = None
    notes: list[str] = field(default_factory=list)

    def columns(self, name: str) -> list[str]:
        return [str(row[0]) for row in self.con.execute(f"DESCRIBE {_quote(name)}").fetchall()]

    def close(self) -> None:
        self.con.close()
        if self.scratch is not None:
            self.scratch.cleanup()


def connect() -> duckdb.DuckDBPyConnection:
    import duckdb

    # No extension may be downloaded: this machine (and many a laptop) has no route to DuckDB's
    # extension repository, and a query must not hang trying.  JSON and Parquet are built in.
    # NULLs sort as in Spark (first when ascending, last when descending), so that `stedi query`
    # prints rows in the order it always has; DuckDB's own default, like Athena's, is NULLS LAST.
    return duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                              "default_null_order": "nulls_first_on_asc_last_on_desc"})


#: A carriage return that does not start a CRLF: Spark's line reader ends a line there, DuckDB's
#: JSON reader does not (it would read two records as one malformed line).
_LONE_CR = re.compile(rb"\r(?!\n)")


def _spark_lines(key: str, data: bytes) -> tuple[bytes | None, str | None]:
    """The text of a landing file as Spark splits it, when DuckDB cannot read the file as it is
    (else None), and what is wrong with a damaged gzip file (else None)."""
    problem = None
    text = data
    if key.endswith(".gz"):
        text, damage = read_gzip(data)
        if damage is not None:
            # DuckDB fails a whole query on a damaged gzip stream; Spark (ignoreCorruptFiles)
            # shows what it read before the damage: the complete lines that can be trusted
            # (cloud_pipeline/transforms/damaged_files.py).
            text = b"\n".join(damage.lines) + b"\n"
            problem = damage.problem
    lone_cr = b"\r" in text and _LONE_CR.search(text) is not None
    if lone_cr:
        text = _LONE_CR.sub(b"\n", text)
    return (text if lone_cr or problem else None), problem


def _landing_paths(store: PipelineStore, entity: str, scratch: list[tempfile.TemporaryDirectory[str]],
                   check_files: bool) -> list[str]:
    """The files DuckDB reads for a landing table: the lake's own, or, when ``check_files`` and a
    file cannot be read by DuckDB as Spark reads it, a copy that can (in ``scratch``)."""
    paths: list[str] = []
    for obj in store.landing_files(entity):
        path = store.path(obj.key)
        if check_files:
            text, problem = _spark_lines(obj.key, Path(path).read_bytes())
            if problem is not None:
                log.warning("landing file %s is damaged (%s): its complete lines are read", obj.key, problem)
            if text is not None:
                if not scratch:
                    scratch.append(tempfile.TemporaryDirectory(prefix="stedi-duck-"))
                copy = Path(scratch[0].name) / f"{len(paths)}-{Path(obj.key).name.removesuffix('.gz')}"
                copy.write_bytes(text)
                path = str(copy)
        paths.append(path)
    return paths


def _per_table_files(store: PipelineStore, base: str, listed: dict[str, list[str]]) -> dict[str, list[str]]:
    return {e: [f for b in listed.get(e, []) for f in data_files(store.root / f"{base}{b}/table={e}_landing", ".parquet")]
            for e in ENTITIES}


def _batches_view(files: dict[str, list[str]], columns: tuple[str, ...]) -> str:
    """The quarantine or warnings table: every batch's Parquet files, ``table`` from the folder."""
    parts = []
    for entity, paths in files.items():
        if paths:
            kept = ", ".join(_quote(c) for c in columns if c != "table")
            parts.append(f"SELECT {_literal(f'{entity}_landing')} AS {_quote('table')}, {kept} "
                         f"FROM read_parquet({_list(paths)}, union_by_name=true)")
    if not parts:
        return _empty([(c, "VARCHAR") for c in columns])
    return " UNION ALL ".join(parts)


def _zone_view(store: PipelineStore, state: PipelineState, table: Table) -> str:
    columns = [(f.name, DUCK_TYPES[f.type]) for f in table.fields]
    location = state.table_locations().get(table.name)
    if location is None:
        return _empty(columns)
    folder = store.root / location.key
    if not folder.is_dir():
        # Not an empty table: the state names files the lake lacks (deleted by hand, a cache
        # that lost them).  Spark fails the query too; say which table and where.
        lake = getattr(store, "url", store.lake.url)  # an S3 lake's own URL, not its cache's
        raise LakeError(f"table {table.name}: its current version {location.key} is missing from {lake}")
    typed = ", ".join(f"CAST({_quote(n)} AS {k}) AS {_quote(n)}" for n, k in columns)
    if location.format == "json":
        files = data_files(folder, ".json")
        return f"SELECT {typed} FROM {read_json_lines(files, columns)}" if files else _empty(columns)
    files = data_files(folder, ".parquet")
    return f"SELECT {typed} FROM read_parquet({_list(files)}, union_by_name=true)" if files else _empty(columns)


def _create_view(con: duckdb.DuckDBPyConnection, name: str, query: str) -> None:
    import duckdb

    try:
        # Binding the view reads the Parquet files' footers: a damaged file fails here.
        con.execute(f"CREATE VIEW {_quote(name)} AS {query}")
    except duckdb.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LakeError(f"cannot read table {name}: {first}") from exc


def mentioned(sql: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", sql, re.IGNORECASE) is not None


def open_duck(store: PipelineStore, sql: str | None = None) -> DuckLake:
    """The lake's tables as DuckDB views, by the names Spark's catalog gives them.

    ``sql``, when given, is the query to come: only the landing tables it names have their files
    checked for what DuckDB would read otherwise than Spark (a damaged ``.json.gz``, lines ended by a
    lone carriage return); a check reads each file whole.
    """
    con = connect()
    state = store.load_state()
    scratch: list[tempfile.TemporaryDirectory[str]] = []
    names = []
    unbuilt = []
    for table in TABLES:
        if table.zone == "landing":
            text = [(f.name, "VARCHAR") for f in table.fields]
            check = sql is None or mentioned(sql, table.name)
            paths = _landing_paths(store, table.entity, scratch, check)
            query = landing_select(table, read_json_lines(paths, text)) if paths else _empty(
                [(f.name, DUCK_TYPES[f.type]) for f in table.fields])
        else:
            if table.name not in state.tables:
                unbuilt.append(table.name)
            query = _zone_view(store, state, table)
        _create_view(con, table.name, query)
        names.append(table.name)
    if unbuilt:
        log.info("not built yet, so they read as empty: %s (run `stedi pipeline run`)", ", ".join(unbuilt))
    _create_view(con, QUARANTINE_TABLE,
                 _batches_view(_per_table_files(store, QUARANTINE_FOLDER, state.quarantine), QUARANTINE_COLUMNS))
    _create_view(con, WARNINGS_TABLE,
                 _batches_view(_per_table_files(store, WARNINGS_FOLDER, state.warnings), WARNINGS_COLUMNS))
    names += [QUARANTINE_TABLE, WARNINGS_TABLE]
    return DuckLake(con, names, scratch[0] if scratch else None)
