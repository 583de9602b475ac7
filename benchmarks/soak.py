"""Soak run of the fault suite: minutes of streaming under every fault, then exact accounting.

    .venv/bin/python benchmarks/soak.py --minutes 5 --boards 3 --seed 1 --kill-every 20 \\
        --outage-at 60 --outage-s 120 --reset-at 200 --clock-jump-at 150 --clock-jump -3600 --pipeline

Radio loss and random disconnects all along, the gateway SIGKILLed every ``--kill-every``
seconds on average (seeded) and restarted, S3 away for ``--outage-s`` seconds, a board reset,
a phone clock jump.  Prints the figures (readings produced, landed, lost, lost with a reset
board's RAM, duplicated, disconnects injected, frames dropped, kills per phase, outages) and
exits 1 when the accounting is not exact.  See docs/faults.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness.faults import FaultPlan, Figures, run_faults  # noqa: E402


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/soak.py",
        description="Stream from virtual boards through the gateway under faults for minutes, then check that "
                    "every reading landed exactly once (by serial, boot id, seq).  Exit 1 when not exact.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--minutes", type=float, default=5.0, help="streaming time under faults")
    p.add_argument("--boards", type=int, default=3, help="virtual boards (one customer each; consent yes/no/late)")
    p.add_argument("--seed", type=int, default=1, help="seed of the radio, the kill times and the boards' serials")
    p.add_argument("--loss", type=float, default=0.05, help="radio: probability an unacknowledged packet is lost")
    p.add_argument("--disconnects", type=float, default=0.02, help="radio: probability per second a link drops")
    p.add_argument("--kill-every", type=float, default=20.0,
                   help="mean seconds between SIGKILLs of the gateway (uniform 0.5x..1.5x; 0: none)")
    p.add_argument("--commit-delay", type=float, default=0.2,
                   help="gateway spool_commit_delay_s: hold each commit open so some kills land inside one")
    p.add_argument("--upload-delay", type=float, default=0.2, help="proxy delay per chunk: widens the upload window")
    p.add_argument("--outage-at", type=float, default=60.0, help="when S3 goes away (s into streaming)")
    p.add_argument("--outage-s", type=float, default=120.0, help="how long S3 stays away (0: no outage)")
    p.add_argument("--reset-at", type=float, action="append", default=None,
                   help="hard-reset a board (seeded choice) at this time; repeatable; default: at 2/3 of the run")
    p.add_argument("--no-reset", action="store_true", help="no board reset")
    p.add_argument("--clock-jump-at", type=float, default=None, help="when the phone's clock jumps (default: mid-run)")
    p.add_argument("--clock-jump", type=float, default=-3600.0, help="the jump in seconds (0: none)")
    p.add_argument("--folder", action="store_true", help="land in a folder instead of moto's S3 (no outage then)")
    p.add_argument("--pipeline", action="store_true", help="then run the Spark pipeline and check trusted/curated")
    p.add_argument("--keep", type=Path, default=None, help="keep the work folder (logs, lake, spool) here")
    p.add_argument("--json", action="store_true", help="end with the figures as one JSON line")
    p.add_argument("-v", "--verbose", action="store_true", help="INFO logs of the harness, radio and boards")
    args = p.parse_args(argv)
    if args.boards < 1 or args.minutes <= 0:
        p.error("--boards >= 1 and --minutes > 0 are required")
    return args


def plan_of(args: argparse.Namespace) -> FaultPlan:
    seconds = args.minutes * 60
    resets = [] if args.no_reset else (args.reset_at or [round(seconds * 2 / 3, 1)])
    jump_at = args.clock_jump_at if args.clock_jump_at is not None else seconds / 2
    return FaultPlan(
        seconds=seconds, boards=args.boards, seed=args.seed, s3=not args.folder, loss=args.loss,
        disconnect_per_s=args.disconnects, kill_every_s=args.kill_every, commit_delay_s=args.commit_delay,
        upload_delay_s=0.0 if args.folder else args.upload_delay,
        outages=[(args.outage_at, args.outage_s)] if args.outage_s > 0 and not args.folder else [],
        resets=resets, clock_jumps=[(jump_at, args.clock_jump)] if args.clock_jump else [],
        pipeline=args.pipeline,
    )


def report(f: Figures, plan: FaultPlan) -> str:
    lines = [
        f"streamed {plan.seconds:.0f} s with {plan.boards} boards, seed {plan.seed}, wall time {f.seconds:.0f} s",
        f"readings produced      {f.produced}",
        f"landed                 {f.landed}",
        f"lost                   {f.lost}",
        f"lost on board reset    {f.lost_on_board_reset}  (unacknowledged readings in the RAM of a board that reset)",
        f"duplicated             {f.duplicated}",
        f"unexpected/unreadable  {f.unexpected}/{f.unreadable}",
        f"board buffer drops     {f.board_dropped}",
        f"disconnects injected   {f.disconnects_injected}",
        f"frames dropped (air)   {f.frames_dropped}  (notifications lost with a dropped link; {f.packets_lost} packets lost and retransmitted or adverts missed)",
        f"gateway SIGKILLs       {len(f.kills)}  by phase: "
        + (", ".join(f"{k} {v}" for k, v in sorted(f.kills_by_phase.items())) or "-"),
        f"gateway restarts       {f.restarts}"
        + (f"  (exited on their own: {f.gateway_exits})" if f.gateway_exits else ""),
        f"S3 outages             {len(f.outages_s)}, total {sum(f.outages_s):.0f} s, longest {max(f.outages_s, default=0):.0f} s",
        f"board resets           {f.resets}",
        f"phone clock jumps      {', '.join(f'{j:+.0f} s' for j in f.clock_jumps_s) or '-'}",
    ]
    if f.curated is not None:
        c = f.curated
        lines.append(f"curated zone           expected {c['expected']} (excluded by consent {c['excluded_by_consent']}); "
                     + "; ".join(f"{n}: rows {c[n]['rows']} missing {c[n]['missing']} extra {c[n]['extra']} "
                                 f"duplicated {c[n]['duplicated']}"
                                 for n in ("step_trainer_trusted", "machine_learning_curated")))
    lines.append("EXACT: zero lost, zero duplicated" if f.exact else "NOT EXACT")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    plan = plan_of(args)
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    figures = run_faults(plan, progress=progress, keep=args.keep)
    print(report(figures, plan))
    if args.json:
        print(json.dumps(figures.as_json()))
    return 0 if figures.exact else 1


if __name__ == "__main__":
    sys.exit(main())
