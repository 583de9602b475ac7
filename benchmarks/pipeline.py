"""Benchmark: this pipeline vs the straightforward port vs DuckDB vs Spark's start-up floor.

    .venv/bin/python benchmarks/pipeline.py [--scales 1,10,100] [--repeats 3] [--workdir DIR]

For each scale a clean fleet (956 customers x scale) is written, then in each repeat, alternating:

- floor:       a fresh process creates the pipeline's local Spark session (its quick-start tuning and
               the class archive of ``stedi pipeline warm-up`` when recorded), counts one row, stops;
- stock-floor: the same with Spark as it comes (no tuning, no archive), for reference;
- io-floor:    the pipeline's session reads the three landing tables and writes five Parquet tables
               with no logic: the I/O any Spark version of the five jobs does at least;
- pipeline:    ``stedi pipeline run --full-refresh`` in a fresh process;
- incremental: 1% more customers arrive as new files, then ``stedi pipeline run`` (incremental);
- naive:       the straightforward port: one process and session per job, schemas inferred on
               every read, JSON written and re-read between jobs;
- duckdb:      DuckDB running the same SQL over the same landing files, writing Parquet.

Every variant is timed as wall-clock time of its process(es); peak memory is the largest resident
set of the process tree (python + JVM), sampled every 50 ms from /proc.  Prints medians, the goal
ratios and whether each goal is met, and writes the figures as JSON beside the data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
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


# --- measuring -----------------------------------------------------------------------------


def _tree_rss_kb(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/status") as fh:
                kb = next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = kb
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
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


def bench_scale(workdir: Path, scale: int, repeats: int, variants: list[str]) -> dict[str, dict[str, float]]:
    lake = prepare(workdir, scale)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    times: dict[str, list[float]] = {v: [] for v in variants}
    peaks: dict[str, int] = {v: 0 for v in variants}
    this = str(Path(__file__).resolve())
    out = workdir / f"out-{scale}"
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
            elif variant == "pipeline":
                t, m = run_measured([STEDI, "pipeline", "run", "--lake", str(lake), "--full-refresh"], env)
            elif variant == "incremental":
                add_one_percent(lake, scale, rep)
                t, m = run_measured([STEDI, "pipeline", "run", "--lake", str(lake)], env)
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


def report(results: dict[int, dict[str, dict[str, float]]]) -> list[str]:
    lines = []
    for scale, r in sorted(results.items()):
        med = {v: x["median_s"] for v, x in r.items()}
        lines.append(f"{scale}x: " + ", ".join(f"{v} {s:.2f}s ({r[v]['peak_mb']} MB)" for v, s in med.items()))
        if "floor" in med and "pipeline" in med:
            ratio = med["pipeline"] / med["floor"]
            lines.append(f"  pipeline / floor = {ratio:.2f} (goal at 1x: <= 1.3) {'MET' if ratio <= 1.3 else 'NOT MET'}")
        if "io-floor" in med and "floor" in med:
            lines.append(f"  Spark I/O floor / floor = {med['io-floor'] / med['floor']:.2f} (read 3 landing tables, "
                         "write 5 Parquet tables, no logic: below this no Spark version of the jobs can go)")
        if "io-floor" in med and "duckdb" in med:
            lines.append(f"  Spark I/O floor / DuckDB = {med['io-floor'] / med['duckdb']:.2f}")
        if "stock-floor" in med and "pipeline" in med:
            lines.append(f"  pipeline / stock Spark floor = {med['pipeline'] / med['stock-floor']:.2f} (for reference: "
                         "the goal's floor above uses the pipeline's own tuned session)")
        if "stock-floor" in med and "incremental" in med:
            lines.append(f"  incremental / stock Spark floor = {med['incremental'] / med['stock-floor']:.2f}")
        if "floor" in med and "incremental" in med:
            ratio = med["incremental"] / med["floor"]
            lines.append(f"  incremental after 1% new files / floor = {ratio:.2f} (goal: <= 1.15) "
                         f"{'MET' if ratio <= 1.15 else 'NOT MET'}")
        if "naive" in med and "pipeline" in med:
            ratio = med["pipeline"] / med["naive"]
            lines.append(f"  pipeline / straightforward port = {ratio:.2f} (goal at 100x: <= 0.35) "
                         f"{'MET' if ratio <= 0.35 else 'NOT MET'}")
        if "duckdb" in med and "pipeline" in med:
            ratio = med["pipeline"] / med["duckdb"]
            lines.append(f"  pipeline / DuckDB = {ratio:.2f} (goal at 100x: <= 4) {'MET' if ratio <= 4 else 'NOT MET'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1,10", help="comma-separated multiples of the original 956 customers")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default="floor,stock-floor,io-floor,pipeline,incremental,naive,duckdb")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/stedi-bench"))
    args = parser.parse_args()
    results: dict[int, dict[str, dict[str, float]]] = {}
    for scale in (int(s) for s in args.scales.split(",")):
        print(f"scale {scale}x", flush=True)
        results[scale] = bench_scale(args.workdir, scale, args.repeats, args.variants.split(","))
    lines = report(results)
    print("\n".join(["", "medians and goals:"] + lines))
    (args.workdir / "results.json").write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "floor":
        floor_main()
    elif len(sys.argv) > 1 and sys.argv[1] == "stock-floor":
        stock_floor_main()
    elif len(sys.argv) > 1 and sys.argv[1] == "io-floor":
        io_floor_main(*sys.argv[2:4])
    elif len(sys.argv) > 1 and sys.argv[1] == "naive-job":
        naive_job_main(*sys.argv[2:5])
    elif len(sys.argv) > 1 and sys.argv[1] == "duckdb":
        duckdb_main(*sys.argv[2:4])
    else:
        main()
