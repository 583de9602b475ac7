"""Gateway figures: readings/s from decoded frame to committed spool row and on to uploaded
batch (on one core, uploading to moto's S3 server), and peak memory with a backlog of 10^6
readings waiting in the spool and then uploaded.

Run: .venv/bin/python benchmarks/gateway.py [--readings 200000] [--backlog 1000000] [--sync FULL]
Goals: >= 5,000 readings/s; peak memory < 150 MB whatever the backlog.
Prints the figures; asserts nothing (the tests check behaviour).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from firmware.board import stedi_protocol as proto  # noqa: E402
from tests.parts import AWS_TEST_ENV, start_moto  # noqa: E402

SERIAL = "3f0c1e1a-8c7e-4d8e-9a51-0c3f5a7b9d21"
EMAIL = "bench@example.com"
PER_FRAME = proto.readings_per_frame(proto.MTU_PREFERRED)  # 75 readings at MTU 247


def frames(total: int, boot: int = 4242, t0: int = 1_790_000_000_000) -> list[bytes]:
    """Real batch frames as a board at MTU 247 sends them, 20 Hz (50 ms apart)."""
    out = []
    for first in range(0, total, PER_FRAME):
        n = min(PER_FRAME, total - first)
        out.append(proto.encode_batch(boot, first, [(s, t0 + 50 * s, 200 + s % 97) for s in range(first, first + n)]))
    return out


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """One measurement in a fresh process (so peak memory is this phase's own)."""
    from gateway.accel import open_source
    from gateway.customers import Customers
    from gateway.ingest import Ingest
    from gateway.spool import Spool
    from gateway.uploader import Uploader, UploadSettings, open_gateway_lake

    os.sched_setaffinity(0, {0})  # one core for the gateway (moto runs in its own process)
    home = Path(args.home)
    spool = Spool(home, max_readings=max(2_000_000, args.count * 2), synchronous=args.sync)
    Customers(spool).register(email=EMAIL, name="Bench", phone="1", birthday="1990-01-01", serial=SERIAL)
    ingest = Ingest(spool, open_source("sim"))
    lake = open_gateway_lake(f"s3://{args.bucket}/bench-{args.phase}")
    uploader = Uploader(spool, lake, UploadSettings())  # 5 MiB batches, the default
    encoded = frames(args.count)
    result: dict[str, float] = {}
    start = time.perf_counter()
    if args.phase == "throughput":
        # Decode, pair with the accelerometer, commit, and upload full batches as they fill.
        for data in encoded:
            boot, _first, readings = proto.decode_batch(data)
            ingest.add(SERIAL, boot, readings)
            if spool.unbatched() >= uploader.settings.batch_readings:
                uploader.drain_sync(force=False)
        ingested = time.perf_counter()
        uploader.drain_sync(force=True)
    else:
        # Backlog: the lake is away while the whole backlog arrives; then it all drains.
        for data in encoded:
            boot, _first, readings = proto.decode_batch(data)
            ingest.add(SERIAL, boot, readings)
        ingested = time.perf_counter()
        result["peak_mb_backlog_spooled"] = peak_mb()
        result["spool_file_mb"] = (home / "spool.sqlite3").stat().st_size / 2**20
        uploader.drain_sync(force=True)
    end = time.perf_counter()
    objects = len(lake.list())
    result.update({
        "readings": args.count,
        "ingest_s": ingested - start,
        "total_s": end - start,
        "ingest_per_s": args.count / (ingested - start),
        "end_to_end_per_s": args.count / (end - start),
        "objects": objects,
        "uploaded": spool.stats().uploaded_readings,
        "peak_mb": peak_mb(),
    })
    print(json.dumps(result))


def run_child(phase: str, count: int, bucket: str, sync: str, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        done = subprocess.run(
            [sys.executable, __file__, "--child", phase, "--count", str(count), "--bucket", bucket, "--home", home,
             "--sync", sync],
            env=env, capture_output=True, text=True, check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=200_000, help="readings for the throughput run")
    parser.add_argument("--backlog", type=int, default=1_000_000, help="readings for the backlog/memory run")
    parser.add_argument("--sync", default="FULL", help="SQLite synchronous mode of the spool (FULL = the default)")
    parser.add_argument("--child", dest="phase", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        child(args)
        return

    import boto3

    with tempfile.TemporaryDirectory() as logs:
        server = start_moto(Path(logs) / "moto.log")
        try:
            env = {**os.environ, **AWS_TEST_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.port}",
                   "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
            os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
            bucket = "stedi-bench"
            boto3.client("s3").create_bucket(Bucket=bucket)
            print(f"gateway benchmark: spool synchronous={args.sync}, {PER_FRAME} readings per frame (MTU 247), "
                  "accelerometer 'sim', 5 MiB batches to moto S3, gateway pinned to one core")
            t = run_child("throughput", args.readings, bucket, args.sync, env)
            print(f"  frame -> committed spool row: {t['ingest_per_s']:,.0f} readings/s "
                  f"({t['readings']:,} readings in {t['ingest_s']:.1f}s, uploading as batches filled)")
            print(f"  frame -> uploaded batch (end to end): {t['end_to_end_per_s']:,.0f} readings/s "
                  f"({t['objects']} objects, {t['uploaded']:,} readings uploaded), peak RSS {t['peak_mb']:.0f} MB")
            b = run_child("backlog", args.backlog, bucket, args.sync, env)
            print(f"  backlog of {b['readings']:,} readings: spooled at {b['ingest_per_s']:,.0f}/s, spool file "
                  f"{b['spool_file_mb']:.0f} MB, peak RSS {b['peak_mb_backlog_spooled']:.0f} MB while spooled")
            print(f"  backlog drained to S3 in {b['total_s'] - b['ingest_s']:.1f}s "
                  f"({b['readings'] / (b['total_s'] - b['ingest_s']):,.0f} readings/s, {b['objects']} objects), "
                  f"peak RSS {b['peak_mb']:.0f} MB overall")
            goal = "met" if t["end_to_end_per_s"] >= 5000 and b["peak_mb"] < 150 else "NOT met"
            print(f"  goals (>= 5,000 readings/s end to end, < 150 MB): {goal}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
