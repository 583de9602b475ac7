"""The fuzz suite (tests/fuzz) run for longer: the same generators and checks, more examples.

Targets:
- gateway decode_batch / decode_status: random and mutated frames against a spec reference;
- gateway frame path: streams of good, repeated, mutated, stale and random frames through the
  central's commit task and a real spool (bad frames counted in ``bad_frames``);
- MicroPython = CPython: the shared protocol decoders under both interpreters (one long-lived
  MicroPython process answers every input);
- firmware control writes: a running board under MicroPython counts every malformed write;
- pipeline landing lines: generated landing lakes through the real pipeline on local Spark.

Run: .venv/bin/python benchmarks/fuzz.py [--examples 20000] [--pipeline-examples 3] [--no-pipeline]
     [--targets gateway,firmware,pipeline]
Prints inputs tried, bad inputs and rejections counted by the target per target, and seconds.
Exits non-zero if any check fails (the failing input is printed by hypothesis).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from firmware.board.stedi_protocol import encode_stop  # noqa: E402
from tests.fuzz import frames as fr  # noqa: E402
from tests.fuzz import micropython as mpf  # noqa: E402
from tests.fuzz.ingest import check_stream  # noqa: E402
from tests.fuzz.tally import TALLIES, tally  # noqa: E402
from tests.parts import micropython_binary  # noqa: E402


def run_target(name: str, examples: int, test: Callable[..., None], **strategies: Any) -> None:
    started = time.monotonic()
    configured = settings(max_examples=examples, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))(given(**strategies)(test))
    configured()
    print(f"  {name}: done in {time.monotonic() - started:.1f}s", flush=True)


def gateway_targets(n: int) -> None:
    run_target("gateway decode_batch", n, lambda data: tally("gateway decode_batch").add(fr.check_frame(data)),
               data=fr.any_frames())
    status = st.binary(max_size=40) | st.binary(min_size=30, max_size=40).map(lambda b: b"\x01" + b)
    run_target("gateway decode_status", n, lambda data: tally("gateway decode_status").add(fr.check_status(data)),
               data=status)

    def stream(boot: int, data: st.DataObject) -> None:
        frames = data.draw(fr.frame_streams(boot))
        tried, refused = check_stream(frames, boot)
        t = tally("gateway frame path (frames)")
        t.tried += tried
        t.bad += refused
        t.counted += refused

    run_target("gateway frame path", max(1, n // 20), stream, boot=st.integers(0, 0xFFFF), data=st.data())


def micropython_targets(n: int) -> None:
    binary = micropython_binary()
    if binary is None:
        print("  MicroPython unix port not found: firmware targets skipped")
        return
    from firmware.build import build

    with tempfile.TemporaryDirectory() as tmp:
        firmware = build(Path(tmp) / "build").out
        decoders = mpf.DecoderServer(binary, firmware)
        try:
            def agree(kind: str, target: str) -> Callable[[bytes], None]:
                return lambda data: tally(target).add(mpf.check_decoders_agree(decoders, kind, data))

            run_target("micropython=cpython decode_batch", n, agree("b", "micropython=cpython decode_batch"),
                       data=fr.any_frames())
            run_target("micropython=cpython decode_control", n,
                       agree("c", "micropython=cpython decode_control"), data=mpf.control_writes())
            small = st.binary(max_size=40) | st.binary(min_size=30, max_size=33).map(lambda b: b"\x01" + b)
            run_target("micropython=cpython decode_status", n // 4, agree("s", "micropython=cpython decode_status"),
                       data=small)
            run_target("micropython=cpython decode_ad_fields", n // 4,
                       agree("a", "micropython=cpython decode_ad_fields"), data=small)
        finally:
            decoders.close()
        board = mpf.BoardServer(binary, firmware)
        try:
            def writes(data: st.DataObject) -> None:
                items = data.draw(st.lists(mpf.control_writes(board.boot_id) | mpf.near_seq_writes()
                                           | st.just(encode_stop()), min_size=1, max_size=12))
                t = tally("firmware control writes (running board)")
                for item in items:
                    w = item if isinstance(item, bytes) else mpf.resolve_near(board, item)
                    refused = mpf.check_board_write(board, w)
                    t.add(refused)
                    t.counted += int(refused)

            run_target("firmware control writes", max(1, n // 6), writes, data=st.data())
        finally:
            board.close()


def pipeline_target(examples: int) -> None:
    from cloud_pipeline.session import local_session
    from tests.fuzz.landing import build_corpus
    from tests.fuzz.test_landing import check_lake

    spark = local_session("stedi-fuzz", cores=2)
    try:
        def lake(seed: int, people: int, readings: int, bad_share: float, unknown_share: float) -> None:
            check_lake(spark, build_corpus(seed, people, readings, bad_share, unknown_share), seed)

        started = time.monotonic()
        settings(max_examples=examples, deadline=None, database=None, phases=(Phase.generate,),
                 suppress_health_check=list(HealthCheck))(given(
            seed=st.integers(0, 2**32 - 1), people=st.integers(2, 12), readings=st.integers(500, 3000),
            bad_share=st.sampled_from((0.0, 0.05, 0.3)), unknown_share=st.sampled_from((0.0, 0.15)),
        )(lake))()
        print(f"  pipeline landing lakes: {examples} runs in {time.monotonic() - started:.1f}s", flush=True)
    finally:
        spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=20000, help="examples per decoder target (others scale)")
    parser.add_argument("--pipeline-examples", type=int, default=3, help="generated lakes run through the pipeline")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the (slow) pipeline target")
    parser.add_argument("--targets", default="gateway,firmware,pipeline",
                        help="comma-separated subset of gateway, firmware, pipeline")
    args = parser.parse_args()
    targets = set(args.targets.split(","))
    if args.no_pipeline:
        targets.discard("pipeline")
    # Every refused frame is logged as a warning by the gateway: a flood here, not news.
    logging.getLogger("gateway").setLevel(logging.ERROR)
    started = time.monotonic()
    if "gateway" in targets:
        print("fuzzing the gateway's decoder and frame path", flush=True)
        gateway_targets(args.examples)
    if "firmware" in targets:
        print("fuzzing the firmware under MicroPython", flush=True)
        micropython_targets(args.examples)
    if "pipeline" in targets:
        print("fuzzing the pipeline with generated landing lakes", flush=True)
        pipeline_target(args.pipeline_examples)
    print(f"\n{'target':45} {'inputs':>9} {'bad':>9} {'counted':>9}")
    for name, t in sorted(TALLIES.items()):
        print(f"{name:45} {t.tried:>9} {t.bad:>9} {t.counted if t.counted else '-':>9}")
    total = sum(t.tried for t in TALLIES.values())
    print(f"{'total':45} {total:>9}   in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
