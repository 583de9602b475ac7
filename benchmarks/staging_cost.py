"""What parsing and checking the landing lines costs: the staging step of a full pipeline run.

Writes a clean fleet of 956 x SCALE customers (optionally drifted), then runs ``stedi pipeline run
--full-refresh`` on it in a fresh process, REPEATS times, and prints the median seconds of the run's
"stage new landing files" step (from its run record) and of the whole run.  With
``--baseline-checkout DIR`` (another checkout of this repository, e.g. ``git worktree add DIR
<commit>``) the same is done with that checkout's code on a copy of the same landing files, so
the two staging figures compare the landing rules of the two versions.

Run: .venv/bin/python benchmarks/staging_cost.py [--scale 100] [--repeats 3] [--drift 0.0]
     [--baseline-checkout DIR] [--workdir /tmp/stedi-staging]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STAGING_STEP = "stage new landing files"


def command_of(checkout: Path) -> list[str]:
    """How to run that checkout's ``stedi`` (the application moved from stedi.cli to stedi_app.cli)."""
    module = "stedi_app.cli" if (checkout / "stedi_app").is_dir() else "stedi.cli"
    return [sys.executable, "-m", module]


def run_once(checkout: Path, lake: Path) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    started = time.monotonic()
    subprocess.run([*command_of(checkout), "pipeline", "run", "--lake", str(lake), "--full-refresh"],
                   cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - started
    records = sorted((lake / "_pipeline" / "runs").glob("2*.json"))
    record = json.loads(records[-1].read_text())
    return float(record["step_seconds"][STAGING_STEP]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=100, help="multiples of the original 956 customers")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--drift", type=float, default=0.0, help="share of drifted lines (this version only)")
    parser.add_argument("--baseline-checkout", type=Path, help="another checkout to compare with")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/stedi-staging"))
    args = parser.parse_args()

    from simulator.fleet import CUSTOMERS_1X, generate_fleet
    from stedi.lake import FolderLake

    shutil.rmtree(args.workdir, ignore_errors=True)
    lake = args.workdir / "lake"
    started = time.monotonic()
    generate_fleet(FolderLake(lake), CUSTOMERS_1X * args.scale, seed=0, drift=args.drift)
    print(f"fleet of {CUSTOMERS_1X * args.scale:,} customers (drift {args.drift}) in {time.monotonic() - started:.0f} s")
    checkouts = [("this version", REPO, lake)]
    if args.baseline_checkout:
        baseline_lake = args.workdir / "baseline-lake"
        for entity in ("customer", "accelerometer", "step_trainer"):
            shutil.copytree(lake / entity / "landing", baseline_lake / entity / "landing")
        checkouts.append((f"baseline {args.baseline_checkout}", args.baseline_checkout.resolve(), baseline_lake))
    for label, checkout, where in checkouts:
        staging, wall = [], []
        # Each version runs its repeats back to back, on its own copy of the same files.
        for _ in range(args.repeats):
            s, w = run_once(checkout, where)
            staging.append(s)
            wall.append(w)
        print(f"{label}: staging {statistics.median(staging):.1f} s (runs: {', '.join(f'{x:.1f}' for x in staging)}), "
              f"whole run {statistics.median(wall):.1f} s")


if __name__ == "__main__":
    main()
