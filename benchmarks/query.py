"""Benchmark: interactive reads of a 1x lake, `stedi query` and `stedi pipeline report`, as whole processes.

    .venv/bin/python benchmarks/query.py [--repeats 5] [--workdir DIR] [--skip-spark]

A clean 1x fleet (956 customers, seed 0, as benchmarks/pipeline.py writes it) is built by
`stedi pipeline run` once; then, in each repeat, alternating, each of these runs in a fresh process
and its wall-clock time is taken:

- help:         `stedi --help`: the command's own start-up (Python, typer, the parts' CLIs);
- floor:        a fresh process creates the pipeline's local Spark session, counts one row, stops
                (benchmarks/pipeline.py's "floor": the least any Spark command costs);
- query:        `stedi query --lake L --json "SELECT COUNT(*) FROM accelerometer_trusted"` (DuckDB);
- query-spark:  the same with `--engine spark`;
- report:       `stedi pipeline report --lake L --out ...` (DuckDB);
- report-spark: the same with `--engine spark`.

Prints the medians and the goals of issue 15, item 3, with met / not met:
query <= 3 x help, report <= 1 x floor.  Writes the figures as JSON beside the lake.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
STEDI = str(Path(sys.executable).parent / "stedi")
SQL = "SELECT COUNT(*) FROM accelerometer_trusted"
#: (what is measured, the reference it is measured against, the largest ratio the goal allows)
GOALS = (("query", "help", 3.0), ("report", "floor", 1.0))

FLOOR = """
from cloud_pipeline.session import local_session
spark = local_session("floor")
spark.range(1).count()
spark.stop()
"""


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one process; raises with its stderr if it fails."""
    started = time.monotonic()
    run = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO)
    took = time.monotonic() - started
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({run.returncode}):\n{run.stderr[-3000:]}")
    return took


def prepare(workdir: Path, env: dict[str, str]) -> Path:
    from simulator.fleet import CUSTOMERS_1X, generate_fleet
    from stedi.lake import FolderLake

    lake = workdir / "scale-1"
    if not (lake / "_pipeline" / "state" / "pipeline.json").exists():
        generate_fleet(FolderLake(lake), CUSTOMERS_1X, seed=0)
        print(f"  building the 1x lake at {lake} (stedi pipeline run)", flush=True)
        timed([STEDI, "pipeline", "run", "--lake", str(lake), "--create"], env)
    return lake


def variants(lake: Path, out: Path, skip_spark: bool) -> dict[str, list[str]]:
    found = {
        "help": [STEDI, "--help"],
        "query": [STEDI, "query", "--lake", str(lake), "--json", SQL],
        "report": [STEDI, "pipeline", "report", "--lake", str(lake), "--out", str(out / "report.html")],
    }
    if not skip_spark:
        found |= {
            "floor": [PY, "-c", FLOOR],
            "query-spark": [STEDI, "query", "--engine", "spark", "--lake", str(lake), "--json", SQL],
            "report-spark": [STEDI, "pipeline", "report", "--engine", "spark", "--lake", str(lake),
                             "--out", str(out / "report-spark.html")],
        }
    return found


def goal_lines(medians: dict[str, float]) -> list[str]:
    lines = []
    for measured, reference, limit in GOALS:
        if measured in medians and reference in medians:
            ratio = medians[measured] / medians[reference]
            lines.append(f"{measured} / {reference} = {ratio:.2f} (goal: <= {limit:g}) "
                         f"{'MET' if ratio <= limit else 'NOT MET'}")
    for engine in ("query", "report"):
        if engine in medians and f"{engine}-spark" in medians:
            lines.append(f"{engine}: Spark / DuckDB = {medians[f'{engine}-spark'] / medians[engine]:.1f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", default=None, help="where the 1x lake is kept [default: a temporary folder]")
    parser.add_argument("--skip-spark", action="store_true", help="leave out floor and the --engine spark runs")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory(prefix="stedi-query-bench-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        lake = prepare(workdir, env)
        runs = variants(lake, workdir, args.skip_spark)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for rep in range(args.repeats):
            for name, argv in runs.items():
                times[name].append(timed(argv, env))
                print(f"  repeat {rep + 1} {name:12s} {times[name][-1]:6.2f}s", flush=True)
        medians = {name: statistics.median(t) for name, t in times.items()}
        print("medians: " + ", ".join(f"{name} {s:.2f}s" for name, s in medians.items()))
        for line in goal_lines(medians):
            print("  " + line)
        (workdir / "query-bench.json").write_text(json.dumps({"times": times, "medians": medians}, indent=2))


if __name__ == "__main__":
    main()
