"""`stedi query` and `stedi pipeline report` give the same answers from DuckDB and from Spark.

A small drifted and dirty fleet (numeric phones, float and digit-string epochs, three-digit birth
years, malformed and non-UTF-8 lines, a cut .json.gz) is run through the pipeline once; then every
table, landing included, is read by both engines and compared row for row, and the report's
figures are gathered by both and compared whole.  Lines the two landing readers cannot agree on
are checked to differ exactly as docs/pipeline.md says, so a change in either engine shows here.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cloud_pipeline.config import PipelineOptions
from cloud_pipeline.report.data import gather, gather_with
from cloud_pipeline.report.duck_data import DuckAggregates
from cloud_pipeline.runner import run_pipeline
from cloud_pipeline.storage.catalog import table_frames
from cloud_pipeline.storage.duck import open_duck
from cloud_pipeline.storage.s3_cache import open_store
from cloud_pipeline.storage.store import PipelineStore
from simulator.fleet import generate_fleet
from stedi.contract import QUARANTINE_TABLE, TABLES, WARNINGS_TABLE
from stedi.errors import EXIT_USAGE
from stedi.lake import FolderLake
from tests.parts import run_main
from tests.pipeline.helpers import small_lake

WORKTREE = Path(__file__).resolve().parents[2]
ALL_TABLES = [t.name for t in TABLES] + [QUARANTINE_TABLE, WARNINGS_TABLE]


def _key(value: Any) -> Any:
    # NaN is not equal to itself and None does not sort: compare and sort by a stand-in.
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def _sorted(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted((tuple(_key(v) for v in r) for r in rows), key=repr)


def _both(spark: Any, store: PipelineStore, table: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    frame = table_frames(spark, store)[table]
    duck = open_duck(store)
    try:
        relation = duck.con.sql(f'SELECT * FROM "{table}"')
        assert relation.columns == frame.columns, table
        got = relation.fetchall()
    finally:
        duck.close()
    return _sorted(got), _sorted([tuple(r) for r in frame.collect()])


@pytest.fixture(scope="module")
def drifted_lake(spark, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    lake = tmp_path_factory.mktemp("engines") / "lake"
    summary = generate_fleet(FolderLake(lake), customers=12, seed=3, dirty=True, drift=0.5, customers_per_file=4)
    assert summary.drifted_lines and summary.dirty  # the fleet holds what the landing coercions are for
    run_pipeline(spark, str(lake), PipelineOptions(salt="engines-salt"))
    return lake


def _non_utf8_lines(lake: Path, table: str) -> int:
    """Lines of a landing table's files that are not UTF-8 (the one difference a fleet shows)."""
    if not table.endswith("_landing"):
        return 0
    count = 0
    for path in (lake / table.removesuffix("_landing") / "landing").glob("*.json"):
        for line in path.read_bytes().splitlines():
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                count += 1
    return count


@pytest.mark.parametrize("table", ALL_TABLES)
def test_every_table_has_the_same_rows_in_duckdb_and_spark(spark, drifted_lake: Path, table: str) -> None:  # type: ignore[no-untyped-def]
    duck_rows, spark_rows = _both(spark, open_store(str(drifted_lake)), table)
    assert duck_rows, f"{table} is empty: the comparison would prove nothing"
    # The one documented difference: a line that is not UTF-8 reads as NULLs in DuckDB, while
    # Spark may read the fields around the bad bytes (the pipeline quarantines it either way).
    bad = _non_utf8_lines(drifted_lake, table)
    duck_only = [r for r in duck_rows if r not in spark_rows]
    spark_only = [r for r in spark_rows if r not in duck_rows]
    assert len(duck_rows) == len(spark_rows)
    assert len(spark_only) <= bad and all(all(v is None for v in r) for r in duck_only)
    if bad == 0:
        assert duck_rows == spark_rows


def test_json_format_tables_read_the_same(  # type: ignore[no-untyped-def]
        spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    small_lake(lake)
    run_pipeline(spark, str(lake), PipelineOptions(salt="engines-salt", format="json"))
    store = open_store(str(lake))
    assert {t.format for t in store.load_state().tables.values()} == {"json"}
    for table in ("customer_trusted", "machine_learning_curated", "step_trainer_trusted"):
        duck_rows, spark_rows = _both(spark, store, table)
        assert duck_rows == spark_rows and duck_rows, table
    # A version the state names but the lake lacks is an error, not an empty table.
    missing = store.load_state().table_locations()["customer_curated"].key
    shutil.rmtree(lake / missing)
    code, _, err = run_main(monkeypatch, capfd, "query", "--lake", str(lake), "SELECT count(*) AS n FROM customer_trusted")
    assert code == EXIT_USAGE
    assert f"error: table customer_curated: its current version {missing} is missing from {lake}" in err
    assert "--full-refresh" in err


#: Landing lines whose fields both readers give alike (JSON text typed by the contract).
AGREED = [
    '{"user":"a@x","timestamp":1655564376361,"x":0.5,"y":1,"z":-1.0}',
    '{"user":5,"timestamp":"1655564376361","x":1e400,"y":"NaN","z":"Infinity"}',
    '{"user":1.5,"timestamp":"1655564376361.0","x":" 0.25 ","y":"1.5d","z":"2F"}',
    '{"user":true,"timestamp":1.5,"x":null,"y":"abc","z":[1]}',
    '{"user":"big","timestamp":99999999999999999999,"x":1E3,"y":"1_000","z":"0x10"}',
    '{"user":"big2","timestamp":9007199254740993.0,"x":1.7976931348623157E309}',
    '{"user":"big3","timestamp":"9007199254740993","x":"1e3","y":"+1.5","z":".5"}',
    '{"user":"big4","timestamp":" 123 ","x":"5.","y":-0.0}',
    '{"user":"big5","timestamp":"1655564376361.0000001","x":"1.5e-3"}',
    '{"user":"big6","timestamp":-5.0,"x":12345678901234567890123}',
    '{"user":"hex-int","timestamp":"0x10"}',
    '{"user":"under","timestamp":"1_000"}',
    '{"user":"round","timestamp":"1.5"}',
    '{"User":"case","TIMESTAMP":1}',
    '{"user":"uni\\ud83d\\ude00","timestamp":1e3}',
    "not json at all",
    '"just a string"',
    "",
]
#: Lines the readers disagree on, each with (DuckDB's rows, Spark's rows): docs/pipeline.md,
#: "Landing tables in DuckDB".  All but the duplicate key are lines the pipeline quarantines.
DIFFERENT = {
    '{"user":"hex","x":"0x1p3"}': ([("hex", None, None)], [("hex", None, 8.0)]),
    '{"user":{"b":"\\u00e9"},"timestamp":1}': ([('{"b":"é"}', 1, None)], [('{"b":"\\u00e9"}', 1, None)]),
    '[{"user":"arr1","timestamp":1},{"user":"arr2","timestamp":2}]': (
        [(None, None, None)], [("arr1", 1, None), ("arr2", 2, None)]),
    '{"user":"trail","timestamp":3} garbage': ([(None, None, None)], [("trail", 3, None)]),
    '{"user":"first","user":"last","timestamp":4}': ([("first", 4, None)], [("last", 4, None)]),
    b'{"user":"Jos\xe9","timestamp":1,"x":0.0}': ([(None, None, None)], [(None, 1, 0.0)]),
}


def _landing(spark: Any, tmp_path: Path, lines: list[str | bytes]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    lake = tmp_path / f"lake-{len(list(tmp_path.iterdir()))}"
    (lake / "accelerometer/landing").mkdir(parents=True)
    data = b"\n".join(line if isinstance(line, bytes) else line.encode("utf-8") for line in lines)
    (lake / "accelerometer/landing/a.json").write_bytes(data + b"\n")
    store = PipelineStore(FolderLake(lake))
    duck = open_duck(store)
    try:
        got = duck.con.sql("SELECT * FROM accelerometer_landing").fetchall()
    finally:
        duck.close()
    return _sorted(got), _sorted([tuple(r) for r in store.read_landing_table(spark, "accelerometer").collect()])


def test_landing_coercions_match_spark_line_for_line(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Line ends as Spark's reader takes them: LF, CRLF and a lone CR (DuckDB alone would join the
    # two records around a lone CR into one malformed line).
    ends = [b'{"user":"crlf","timestamp":1}\r\n{"user":"cr","timestamp":2}\r{"user":"lf","timestamp":3}']
    duck_rows, spark_rows = _landing(spark, tmp_path, list(AGREED) + ends)
    assert duck_rows == spark_rows
    assert ("big3", 9007199254740993, 1000.0, 1.5, 0.5) in duck_rows  # digit strings and exponents read as numbers
    assert ("1.5", 1655564376361, 0.25, 1.5, 2.0) in duck_rows  # Java's float suffixes, as Spark reads them
    assert ("round", None, None, None, None) in duck_rows  # DuckDB alone would round "1.5" to 2
    assert ("cr", 2, None, None, None) in duck_rows and ("lf", 3, None, None, None) in duck_rows


@pytest.mark.parametrize("line", list(DIFFERENT))
def test_landing_lines_the_engines_read_differently_differ_as_documented(spark, tmp_path: Path, line: str | bytes) -> None:  # type: ignore[no-untyped-def]
    duck_rows, spark_rows = _landing(spark, tmp_path, [line])
    duck_want, spark_want = DIFFERENT[line]
    assert [r[:3] for r in duck_rows] == duck_want
    assert [r[:3] for r in spark_rows] == spark_want
    doc = (WORKTREE / "docs" / "pipeline.md").read_text(encoding="utf-8")
    assert "Landing tables in DuckDB" in doc


def test_report_figures_are_the_same_from_duckdb_and_spark(spark, drifted_lake: Path) -> None:  # type: ignore[no-untyped-def]
    store = open_store(str(drifted_lake))
    want = gather(spark, store)
    duck = open_duck(store)
    try:
        got = gather_with(DuckAggregates(duck), store)
    finally:
        duck.close()
    assert replace(got, generated_at=want.generated_at) == want
    assert want.quarantine and want.warnings and want.signal and want.consent  # every part has data


def test_query_mistakes_read_the_same_on_both_engines(  # type: ignore[no-untyped-def]
        spark, lake_dir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    small_lake(lake_dir)
    for engine in ("duckdb", "spark"):
        code, _, err = run_main(monkeypatch, capfd, "query", "--engine", engine, "--lake", str(lake_dir),
                                "SELECT * FROM customers")
        assert code == EXIT_USAGE and "error: query failed: there is no table customers" in err, engine
        assert "the tables are: customer_landing, accelerometer_landing" in err and "quarantine, warnings" in err
        code, _, err = run_main(monkeypatch, capfd, "query", "--engine", engine, "--lake", str(lake_dir),
                                "SELECT mail FROM customer_landing")
        assert code == EXIT_USAGE and "error: query failed: there is no column mail" in err, engine
        assert "customer_landing: customerName, email, phone" in err
        code, out, err = run_main(monkeypatch, capfd, "query", "--engine", engine, "--lake", str(lake_dir),
                                  "--json", "SELECT email, count(*) AS n FROM customer_landing "
                                            "WHERE email IS NOT NULL GROUP BY email ORDER BY email")
        assert code == 0, err
        assert [json.loads(line) for line in out.splitlines()] == [
            {"email": f"{name}@example.com", "n": n} for name, n in (("ann", 2), ("bob", 1), ("cat", 2))], engine
    # --json prints the same lines from both engines: keys, value types (integers, doubles, NULLs) and order.
    printed = {}
    for engine in ("duckdb", "spark"):
        code, out, err = run_main(monkeypatch, capfd, "query", "--engine", engine, "--lake", str(lake_dir), "--json",
                                  "SELECT * FROM accelerometer_landing ORDER BY user, timestamp, x")
        assert code == 0, err
        printed[engine] = out.splitlines()
    assert printed["duckdb"] == printed["spark"] and len(printed["spark"]) == 6
    assert '"timestamp": null' in printed["spark"][0] and '"x": 1.0' in printed["spark"][0]
    code, _, err = run_main(monkeypatch, capfd, "query", "--engine", "sql-server", "--lake", str(lake_dir), "SELECT 1")
    assert code == EXIT_USAGE and "--engine must be one of: duckdb, spark" in err


def _modules_after(argv: list[str]) -> dict[str, Any]:
    """Run ``stedi <argv>`` in a fresh interpreter; which heavy modules it imported, and its exit code."""
    probe = (
        "import json, sys\n"
        "from stedi_app.cli import main\n"
        f"sys.argv = ['stedi', *{argv!r}]\n"
        "code = 0\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code or 0\n"
        "heavy = sorted(m for m in ('pyspark', 'py4j', 'boto3', 'botocore', 'pandas', 'matplotlib') if m in sys.modules)\n"
        "print('MODULES ' + json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(WORKTREE)}
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    line = next(ln for ln in run.stderr.splitlines() if ln.startswith("MODULES "))
    found: dict[str, Any] = json.loads(line.removeprefix("MODULES "))
    found["stdout"] = run.stdout
    return found


def test_duckdb_query_and_report_start_no_spark(drifted_lake: Path, tmp_path: Path) -> None:
    query = _modules_after(["query", "--lake", str(drifted_lake), "--json",
                            "SELECT count(*) AS n FROM accelerometer_trusted"])
    assert query["code"] == 0 and json.loads(query["stdout"])["n"] > 0
    assert query["heavy"] == []
    report = _modules_after(["pipeline", "report", "--lake", str(drifted_lake), "--out", str(tmp_path / "r.html")])
    assert report["code"] == 0 and (tmp_path / "r.html").is_file()
    assert report["heavy"] == ["matplotlib"]  # the plots; never Spark


def test_a_damaged_table_file_is_one_message_naming_it(  # type: ignore[no-untyped-def]
        drifted_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(drifted_lake, lake)
    version = open_store(str(lake)).load_state().table_locations()["customer_trusted"].key
    part = sorted((lake / version).glob("part-*.parquet"))[0]
    part.write_bytes(b"not parquet")
    for argv in (["query", "--lake", str(lake), "SELECT count(*) AS n FROM customer_trusted"],
                 ["pipeline", "report", "--lake", str(lake), "--out", str(tmp_path / "r.html")]):
        code, _, err = run_main(monkeypatch, capfd, *argv)
        assert code == EXIT_USAGE, err
        assert f"error: cannot read table customer_trusted: Invalid Input Error: File '{part}'" in err
