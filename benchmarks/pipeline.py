"""Benchmark: this pipeline against Spark's I/O floor, the straightforward port and DuckDB.

    .venv/bin/python benchmarks/pipeline.py [--scales 1,10,100] [--repeats 3] [--variants ...] [--workdir DIR]

The defaults (--scales 1,10 --repeats 3, every variant) take about 20 minutes on 2 cores; the
goals at 100x need --scales 1,10,100 (the 100x fleet alone is about 1 GB of landing files).

For each scale a clean fleet (956 customers x scale) is written, then in each repeat, alternating:

- floor:       a fresh process creates the pipeline's local Spark session (its quick-start tuning and
               the class archive of ``stedi pipeline warm-up`` when recorded), counts one row, stops;
- stock-floor: the same with Spark as it comes (no tuning, no archive), for reference;
- io-floor:    the pipeline's session reads the three landing tables and writes five Parquet tables
               with no logic: the I/O any Spark version of the five jobs does at least;
- logic-floor: the same session and reads, then the five jobs' SQL of the original design (the
               straightforward port's) with each table written as Parquet and read back by the next
               job: the least logic any version does (no quarantine, staging, reconciliation or
               counts), to tell the I/O floor's share of the pipeline from the logic's;
- pipeline:    ``stedi pipeline run --full-refresh`` in a fresh process;
- incremental: 1% more customers arrive as new files, then ``stedi pipeline run`` (incremental);
- withdrawal:  the only new landing file is one customer record withdrawing an existing consenting
               customer's research consent (later ``lastUpdateDate``, ``shareWithResearchAsOfDate``
               null), then ``stedi pipeline run``; an untimed run after a second file granting it
               again restores the lake, so every repeat withdraws;
- naive:       the straightforward port: one process and session per job, schemas inferred on
               every read, JSON written and re-read between jobs;
- duckdb:      DuckDB running the same SQL over the same landing files, writing Parquet.

Every variant is timed as wall-clock time of its process(es); peak memory is the largest resident
set of the process tree (python + JVM), sampled every 50 ms from /proc.  Prints medians and every
goal of issue 15 ("Goals") with its ratio and met / not met (``GOALS``; a goal whose scale or
variant was not run says so), and writes the figures and goals as JSON beside the data
(``<workdir>/results.json``).  DuckDB's figures stay as the reference for what one machine can do.
The goals about interactive reads (``stedi query``, ``stedi pipeline report``) are printed by
``benchmarks/query.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
STEDI = str(Path(sys.executable).parent / "stedi")

CUSTOMER_COLUMNS = ("customerName, email, phone, birthDay, serialNumber, registrationDate, lastUpdateDate, "
                    "shareWithResearchAsOfDate, shareWithPublicAsOfDate, shareWithFriendsAsOfDate")
# The five jobs as SQL, shared by the straightforward Spark port and DuckDB ({key}: engine's hash).
SQL = {
    "customer_trusted": f"""
        SELECT {CUSTOMER_COLUMNS} FROM (
          SELECT *, row_number() OVER (PARTITION BY email ORDER BY lastUpdateDate DESC) AS rn
          FROM customer_landing) t
        WHERE rn = 1 AND shareWithResearchAsOfDate IS NOT NULL""",
    "accelerometer_trusted": """
        SELECT DISTINCT a.user, a.timestamp, a.x, a.y, a.z
        FROM accelerometer_landing a JOIN customer_trusted c ON a.user = c.email""",
    "customer_curated": f"""
        SELECT {CUSTOMER_COLUMNS} FROM customer_trusted
        WHERE email IN (SELECT DISTINCT user FROM accelerometer_trusted)""",
    "step_trainer_trusted": """
        SELECT DISTINCT s.sensorReadingTime, s.serialNumber, s.distanceFromObject, s.bootId, s.seq
        FROM step_trainer_landing s
        WHERE s.serialNumber IN (SELECT serialNumber FROM customer_curated)""",
    "machine_learning_curated": """
        SELECT s.sensorReadingTime, s.serialNumber, s.distanceFromObject, s.bootId, s.seq,
               {key} AS customerKey, a.timestamp, a.x, a.y, a.z
        FROM step_trainer_trusted s
        JOIN customer_curated c ON s.serialNumber = c.serialNumber
        JOIN accelerometer_trusted a ON a.user = c.email AND a.timestamp = s.sensorReadingTime""",
}
INPUTS = {
    "customer_trusted": ["customer_landing"],
    "accelerometer_trusted": ["accelerometer_landing", "customer_trusted"],
    "customer_curated": ["customer_trusted", "accelerometer_trusted"],
    "step_trainer_trusted": ["step_trainer_landing", "customer_curated"],
    "machine_learning_curated": ["step_trainer_trusted", "customer_curated", "accelerometer_trusted"],
}
LANDING_DIRS = {
    "customer_landing": "customer/landing",
    "accelerometer_landing": "accelerometer/landing",
    "step_trainer_landing": "step_trainer/landing",
}


VARIANTS = ("floor", "stock-floor", "io-floor", "logic-floor", "pipeline", "incremental", "withdrawal", "naive", "duckdb")


# --- measuring -----------------------------------------------------------------------------


def _tree_rss_kb(root: int) -> int:
    """Resident set of ``root`` and its descendants, each address space counted once.

    The JVM starts helper commands (Hadoop's local file system runs ``chmod`` and the like) with
    posix_spawn, whose child shares the JVM's memory until it execs: /proc shows that child with the
    JVM's whole resident set, and summing both doubled the JVM's figure at random samples.  So a
    child still running its parent's executable (not yet exec'd, or a fork sharing its pages
    copy-on-write) is not counted again.
    """
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    exe: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/status") as fh:
                kb = next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
            exe[int(entry)] = os.readlink(f"/proc/{entry}/exe")
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = kb
    total, todo = 0, [(root, -1)]
    while todo:
        pid, parent = todo.pop()
        if parent == -1 or exe.get(pid) != exe.get(parent):
            total += rss.get(pid, 0)
        todo.extend((child, pid) for child in children.get(pid, []))
    return total


def run_measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak tree RSS (MB) of one process; raises if it fails."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=REPO)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_kb(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    done.set()
    sampler.join()
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{err.decode(errors='replace')[-3000:]}")
    return seconds, peak // 1024


# --- the variants (each runs in its own process) -------------------------------------------


def floor_main() -> None:
    from cloud_pipeline.session import local_session

    # The same session the pipeline gets (quick-start settings, the class archive when recorded).
    spark = local_session("floor")
    spark.range(1).count()
    spark.stop()


def stock_floor_main() -> None:
    from pyspark.sql import SparkSession

    # Spark as it comes: no tuning, no class archive.
    spark = SparkSession.builder.master("local[*]").appName("stock-floor").getOrCreate()
    spark.range(1).count()
    spark.stop()


def io_floor_main(lake: str, out: str) -> None:
    """The least any Spark version of the five jobs does: read the three landing tables (explicit
    schemas) and write five Parquet tables, with no logic at all, in the pipeline's session."""
    from cloud_pipeline.session import local_session, quick_start_for
    from cloud_pipeline.transforms.schemas import table_schema
    from stedi.contract import TABLES_BY_NAME

    size = sum(f.stat().st_size for d in LANDING_DIRS.values() for f in (Path(lake) / d).iterdir())
    spark = local_session("io-floor", quick_start=quick_start_for(size))
    frames = {name: spark.read.schema(table_schema(TABLES_BY_NAME[name])).json(f"{lake}/{folder}")
              for name, folder in LANDING_DIRS.items()}
    outputs = ["customer_landing", "accelerometer_landing", "customer_landing", "step_trainer_landing",
               "accelerometer_landing"]
    for i, name in enumerate(outputs):
        frames[name].write.mode("overwrite").parquet(f"{out}/{i}-{name}")
    spark.stop()


def logic_floor_main(lake: str, out: str) -> None:
    """The original design's five jobs as SQL in one session: explicit schemas, Parquet out, each
    table read back from its files by the jobs after it (as the pipeline's jobs do)."""
    from cloud_pipeline.session import local_session, quick_start_for
    from cloud_pipeline.transforms.schemas import table_schema
    from stedi.contract import TABLES_BY_NAME

    size = sum(f.stat().st_size for d in LANDING_DIRS.values() for f in (Path(lake) / d).iterdir())
    spark = local_session("logic-floor", quick_start=quick_start_for(size))
    for name, folder in LANDING_DIRS.items():
        spark.read.schema(table_schema(TABLES_BY_NAME[name])).json(f"{lake}/{folder}").createOrReplaceTempView(name)
    key = "sha2(concat('salt:', c.email), 256)"
    for table in SQL:
        spark.sql(SQL[table].format(key=key)).write.mode("overwrite").parquet(f"{out}/{table}")
        spark.read.parquet(f"{out}/{table}").createOrReplaceTempView(table)
    spark.stop()


def naive_job_main(table: str, lake: str, out: str) -> None:
    """One job of the straightforward port: its own session, inferred schemas, JSON in and out."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.master("local[*]").appName(f"naive-{table}").getOrCreate()
    for name in INPUTS[table]:
        path = f"{lake}/{LANDING_DIRS[name]}" if name in LANDING_DIRS else f"{out}/{name}"
        spark.read.json(path).createOrReplaceTempView(name)  # schema inferred: a full extra pass
    key = "sha2(concat('salt:', c.email), 256)"
    # Nulls written out, or a column that is null throughout vanishes for the next inferring reader.
    result = spark.sql(SQL[table].format(key=key))
    result.write.mode("overwrite").option("ignoreNullFields", "false").json(f"{out}/{table}")
    spark.stop()


def duckdb_main(lake: str, out: str) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 2")
    columns = {
        "customer_landing": "{'customerName':'VARCHAR','email':'VARCHAR','phone':'VARCHAR','birthDay':'VARCHAR',"
        "'serialNumber':'VARCHAR','registrationDate':'BIGINT','lastUpdateDate':'BIGINT',"
        "'shareWithResearchAsOfDate':'BIGINT','shareWithPublicAsOfDate':'BIGINT','shareWithFriendsAsOfDate':'BIGINT'}",
        "accelerometer_landing": "{'user':'VARCHAR','timestamp':'BIGINT','x':'DOUBLE','y':'DOUBLE','z':'DOUBLE'}",
        "step_trainer_landing": "{'sensorReadingTime':'BIGINT','serialNumber':'VARCHAR','distanceFromObject':'BIGINT',"
        "'bootId':'BIGINT','seq':'BIGINT'}",
    }
    for name, folder in LANDING_DIRS.items():
        con.execute(
            f"CREATE VIEW {name} AS SELECT * FROM read_json('{lake}/{folder}/*.json', "
            f"format='newline_delimited', columns={columns[name]})"
        )
    Path(out).mkdir(parents=True, exist_ok=True)
    for table in SQL:
        con.execute(f"CREATE TABLE {table} AS " + SQL[table].format(key="sha256('salt:' || c.email)"))
        con.execute(f"COPY {table} TO '{out}/{table}.parquet' (FORMAT PARQUET)")


# --- orchestration -------------------------------------------------------------------------


def prepare(workdir: Path, scale: int) -> Path:
    from simulator.fleet import CUSTOMERS_1X, generate_fleet
    from stedi.lake import FolderLake

    lake = workdir / f"scale-{scale}"
    marker = lake / "_fleet.json"
    if not marker.exists():
        shutil.rmtree(lake, ignore_errors=True)
        started = time.monotonic()
        summary = generate_fleet(FolderLake(lake), CUSTOMERS_1X * scale, seed=0)
        took = time.monotonic() - started
        print(f"  fleet {scale}x: {summary.accelerometer_rows:,} accelerometer, {summary.step_trainer_rows:,} step "
              f"rows written in {took:.1f}s ({summary.accelerometer_rows / took / 1e6:.2f} M accel rows/s)", flush=True)
        marker.write_text(json.dumps(summary.as_dict()))
    return lake


def add_one_percent(lake: Path, scale: int, repeat: int) -> None:
    from simulator.fleet import CUSTOMERS_1X, generate_fleet
    from stedi.lake import FolderLake

    n = max(1, CUSTOMERS_1X * scale // 100)
    offset = CUSTOMERS_1X * scale + repeat * n
    # One new file per entity holding 1% more customers (files hold 100 customers at most).
    generate_fleet(FolderLake(lake), n, seed=0, customer_offset=offset, customers_per_file=max(n, 1))


def remove_deliveries(lake: Path) -> None:
    """Delete what earlier invocations added to a prepared fleet: its 1% deliveries (fleet files
    of customers beyond the fleet's) and its consent changes.  Every invocation starts from the
    fleet: a delivery written again under its old name is a *changed* landing file, which
    re-stages its entity and rebuilds, so an incremental run on a reused workdir measured a
    rebuild (found on 2026-12-02)."""
    customers = int(json.loads((lake / "_fleet.json").read_text())["customers"])
    for folder in LANDING_DIRS.values():
        for path in sorted((lake / folder).glob("*.json")):
            first = re.fullmatch(r"fleet-s\d+-(\d+)\.json", path.name)
            if path.name.startswith("consent-") or (first is not None and int(first.group(1)) >= customers):
                path.unlink()


def last_run_path(lake: Path) -> str:
    """How the lake's latest run built accelerometer_trusted (its run record's ``paths``): a timed
    incremental run that rebuilt measures a rebuild, and the figures must say so."""
    runs = sorted((lake / "_pipeline" / "runs").glob("*.json"))
    if not runs:
        return "no run record"
    paths = json.loads(runs[-1].read_text()).get("paths") or {}
    return str(paths.get("accelerometer_trusted", "no path recorded"))


def _consenting_record(lake: Path, nth: int) -> dict[str, object]:
    """The record of the ``nth`` consenting customer (0: the first) of the fleet's first customer file.

    Each repeat withdraws another customer: withdrawing the same one again would find its rows in
    the small file the previous repeat's grant appended, not in the full refresh's files, and
    measure a cheaper rewrite (found on 2026-12-02: 23.8 s, then 17.3 s and 16.2 s at 100x)."""
    first = sorted((lake / LANDING_DIRS["customer_landing"]).glob("fleet-*.json"))[0]
    seen: list[str] = []
    for line in first.read_text().splitlines():
        record = json.loads(line)
        if record.get("shareWithResearchAsOfDate") is not None and record["email"] not in seen:
            if len(seen) == nth:
                return dict(record)
            seen.append(record["email"])
    raise RuntimeError(f"fewer than {nth + 1} consenting customers in {first}")


def write_consent_change(lake: Path, repeat: int, withdraw: bool) -> None:
    """One new customer landing file holding one record: the fleet's ``repeat``-th consenting customer
    withdrawing research consent (``withdraw``) or granting it again, later than any earlier change.

    Written under a name the fleet never uses; each repeat's withdrawal and grant get their own file
    (a landing file is never rewritten in place: uploads are new objects).
    """
    record = _consenting_record(lake, repeat)
    step = 2 * repeat + (1 if withdraw else 2)
    record["lastUpdateDate"] = int(record["lastUpdateDate"]) + 1000 * step  # type: ignore[call-overload]
    if withdraw:
        record["shareWithResearchAsOfDate"] = None
    name = f"consent-{'withdrawn' if withdraw else 'granted'}-{repeat:03d}.json"
    (lake / LANDING_DIRS["customer_landing"] / name).write_text(json.dumps(record) + "\n")


def bench_scale(workdir: Path, scale: int, repeats: int, variants: list[str]) -> dict[str, dict[str, float]]:
    lake = prepare(workdir, scale)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    times: dict[str, list[float]] = {v: [] for v in variants}
    peaks: dict[str, int] = {v: 0 for v in variants}
    this = str(Path(__file__).resolve())
    out = workdir / f"out-{scale}"
    remove_deliveries(lake)
    # The incremental runs need a committed full run to build on.
    subprocess.run([STEDI, "pipeline", "run", "--lake", str(lake), "--full-refresh"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    for rep in range(repeats):
        for variant in variants:
            if variant == "floor":
                t, m = run_measured([PY, this, "floor"], env)
            elif variant == "stock-floor":
                t, m = run_measured([PY, this, "stock-floor"], env)
            elif variant == "io-floor":
                t, m = run_measured([PY, this, "io-floor", str(lake), str(out / "io-floor")], env)
            elif variant == "logic-floor":
                t, m = run_measured([PY, this, "logic-floor", str(lake), str(out / "logic-floor")], env)
            elif variant == "pipeline":
                t, m = run_measured([STEDI, "pipeline", "run", "--lake", str(lake), "--full-refresh"], env)
            elif variant == "incremental":
                add_one_percent(lake, scale, rep)
                t, m = run_measured([STEDI, "pipeline", "run", "--lake", str(lake)], env)
                print(f"  {scale}x repeat {rep + 1} incremental took: {last_run_path(lake)}", flush=True)
            elif variant == "withdrawal":
                write_consent_change(lake, rep, withdraw=True)
                t, m = run_measured([STEDI, "pipeline", "run", "--lake", str(lake)], env)
                print(f"  {scale}x repeat {rep + 1} withdrawal took: {last_run_path(lake)}", flush=True)
                # Untimed: consent granted again, so the next repeat (and variant) starts as before.
                write_consent_change(lake, rep, withdraw=False)
                subprocess.run([STEDI, "pipeline", "run", "--lake", str(lake)], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            elif variant == "naive":
                t, m = 0.0, 0
                for table in SQL:
                    tt, mm = run_measured([PY, this, "naive-job", table, str(lake), str(out / "naive")], env)
                    t, m = t + tt, max(m, mm)
            elif variant == "duckdb":
                t, m = run_measured([PY, this, "duckdb", str(lake), str(out / "duckdb")], env)
            else:
                raise ValueError(variant)
            times[variant].append(t)
            peaks[variant] = max(peaks[variant], m)
            print(f"  {scale}x repeat {rep + 1} {variant:12s} {t:7.2f}s  peak {m:,} MB", flush=True)
    return {v: {"median_s": statistics.median(times[v]), "runs_s": times[v], "peak_mb": peaks[v]} for v in variants}


@dataclass(frozen=True)
class Goal:
    """One goal of issue 15: ``numerator / denominator <= limit``, each a figure of one run."""

    name: str
    limit: float
    numerator: tuple[int, str, str]  # (scale, variant, "median_s" | "peak_mb" | "per_1x")
    denominator: tuple[int, str, str]


#: The issue's goals.  "per_1x" is the cost per 1x of data: (median at 10x - median at 1x) / 9.
GOALS = (
    Goal("full refresh at 1x <= 1.5 x Spark I/O floor at 1x", 1.5, (1, "pipeline", "median_s"),
         (1, "io-floor", "median_s")),
    Goal("full refresh at 10x <= 1.5 x Spark I/O floor at 10x", 1.5, (10, "pipeline", "median_s"),
         (10, "io-floor", "median_s")),
    Goal("full refresh at 100x <= 1.5 x Spark I/O floor at 100x", 1.5, (100, "pipeline", "median_s"),
         (100, "io-floor", "median_s")),
    Goal("cost per 1x of data, (10x - 1x) / 9: full refresh <= 1.5 x the I/O floor's", 1.5,
         (10, "pipeline", "per_1x"), (10, "io-floor", "per_1x")),
    Goal("incremental after 1% new files at 100x <= 1.5 x full refresh at 1x", 1.5,
         (100, "incremental", "median_s"), (1, "pipeline", "median_s")),
    Goal("incremental after 1% new files at 10x <= 1.2 x full refresh at 1x", 1.2,
         (10, "incremental", "median_s"), (1, "pipeline", "median_s")),
    Goal("run whose only new file withdraws one customer's consent, at 100x <= 1.5 x full refresh at 1x", 1.5,
         (100, "withdrawal", "median_s"), (1, "pipeline", "median_s")),
    Goal("peak memory of a full refresh at 100x <= the straightforward port's", 1.0,
         (100, "pipeline", "peak_mb"), (100, "naive", "peak_mb")),
)


def _figure(results: dict[int, dict[str, dict[str, float]]], at: tuple[int, str, str]) -> float | None:
    scale, variant, kind = at
    if kind == "per_1x":
        if variant not in results.get(1, {}) or variant not in results.get(10, {}):
            return None
        return (results[10][variant]["median_s"] - results[1][variant]["median_s"]) / 9
    figures = results.get(scale, {}).get(variant)
    return None if figures is None else float(figures[kind])


def _describe(at: tuple[int, str, str], value: float) -> str:
    scale, variant, kind = at
    if kind == "peak_mb":
        return f"{variant} {scale}x {value:,.0f} MB"
    if kind == "per_1x":
        return f"{variant} {value:.2f} s per 1x"
    return f"{variant} {scale}x {value:.2f} s"


def evaluate_goals(results: dict[int, dict[str, dict[str, float]]]) -> list[dict[str, object]]:
    """Every goal with its ratio and whether it is met; ``ratio`` None when a figure was not measured."""
    evaluated: list[dict[str, object]] = []
    for goal in GOALS:
        top, bottom = _figure(results, goal.numerator), _figure(results, goal.denominator)
        if top is None or bottom is None or bottom <= 0:
            needed = sorted({goal.numerator[0], goal.denominator[0]} | ({1, 10} if goal.numerator[2] == "per_1x" else set()))
            variants = sorted({goal.numerator[1], goal.denominator[1]})
            evaluated.append({"goal": goal.name, "limit": goal.limit, "ratio": None, "met": None,
                              "detail": f"not measured: needs --scales including {','.join(map(str, needed))} "
                                        f"and --variants including {','.join(variants)}"})
            continue
        ratio = top / bottom
        evaluated.append({"goal": goal.name, "limit": goal.limit, "ratio": round(ratio, 3), "met": ratio <= goal.limit,
                          "detail": f"{_describe(goal.numerator, top)} / {_describe(goal.denominator, bottom)}"})
    return evaluated


def report(results: dict[int, dict[str, dict[str, float]]]) -> list[str]:
    lines = []
    for scale, r in sorted(results.items()):
        med = {v: x["median_s"] for v, x in r.items()}
        lines.append(f"{scale}x: " + ", ".join(f"{v} {s:.2f}s ({r[v]['peak_mb']:,} MB)" for v, s in med.items()))
        # For reference (the goals below are set against the I/O floor, not these).
        if "io-floor" in med and "floor" in med:
            lines.append(f"  Spark I/O floor / session-start floor = {med['io-floor'] / med['floor']:.2f} (read 3 "
                         "landing tables, write 5 Parquet tables, no logic: below this no Spark version of the jobs can go)")
        if "logic-floor" in med and "io-floor" in med:
            lines.append(f"  logic floor / I/O floor = {med['logic-floor'] / med['io-floor']:.2f} (the original "
                         "design's SQL, no quarantine, staging or counts)")
            if "pipeline" in med:
                lines.append(f"  full refresh / logic floor = {med['pipeline'] / med['logic-floor']:.2f}")
        if "io-floor" in med and "duckdb" in med:
            lines.append(f"  Spark I/O floor / DuckDB = {med['io-floor'] / med['duckdb']:.2f}")
        if "pipeline" in med and "duckdb" in med:
            lines.append(f"  full refresh / DuckDB = {med['pipeline'] / med['duckdb']:.2f} (DuckDB: what one machine can do)")
        if "pipeline" in med and "naive" in med:
            lines.append(f"  full refresh / straightforward port = {med['pipeline'] / med['naive']:.2f}")
        if "pipeline" in med and "floor" in med:
            lines.append(f"  full refresh / session-start floor = {med['pipeline'] / med['floor']:.2f}")
    lines.append("")
    lines.append("goals (issue 15):")
    for g in evaluate_goals(results):
        if g["ratio"] is None:
            lines.append(f"  {g['goal']}: {g['detail']}")
        else:
            verdict = "met" if g["met"] else "NOT MET"
            lines.append(f"  {g['goal']}: {g['ratio']:.2f} (<= {g['limit']}) {verdict}  [{g['detail']}]")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1,10", help="comma-separated multiples of the original 956 customers")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant per scale; medians are reported")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, from: {', '.join(VARIANTS)}")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/stedi-bench"),
                        help="where the fleets, outputs and results.json go (fleets are kept and reused)")
    args = parser.parse_args()
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    results: dict[int, dict[str, dict[str, float]]] = {}
    for scale in (int(s) for s in args.scales.split(",")):
        print(f"scale {scale}x", flush=True)
        results[scale] = bench_scale(args.workdir, scale, args.repeats, args.variants.split(","))
    lines = report(results)
    print("\n".join(["", "medians and goals:"] + lines))
    figures: dict[str, object] = {str(k): v for k, v in results.items()}
    figures["goals"] = evaluate_goals(results)
    (args.workdir / "results.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "floor":
        floor_main()
    elif len(sys.argv) > 1 and sys.argv[1] == "stock-floor":
        stock_floor_main()
    elif len(sys.argv) > 1 and sys.argv[1] == "io-floor":
        io_floor_main(*sys.argv[2:4])
    elif len(sys.argv) > 1 and sys.argv[1] == "logic-floor":
        logic_floor_main(*sys.argv[2:4])
    elif len(sys.argv) > 1 and sys.argv[1] == "naive-job":
        naive_job_main(*sys.argv[2:5])
    elif len(sys.argv) > 1 and sys.argv[1] == "duckdb":
        duckdb_main(*sys.argv[2:4])
    else:
        main()
