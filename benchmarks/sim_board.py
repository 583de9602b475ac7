"""Virtual board figures: power-up, mpremote round trips, upload speed, free heap.

Run: .venv/bin/python benchmarks/sim_board.py [--heap 96k]
Prints the figures; asserts nothing (the tests check behaviour).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.board.server import VirtualBoard  # noqa: E402

MPREMOTE = str(Path(sys.executable).parent / "mpremote")


def mpremote(url: str, *args: str) -> str:
    done = subprocess.run([MPREMOTE, "connect", url, *args], capture_output=True, check=True, timeout=300)
    return done.stdout.decode()


def timed(fn, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--heap", default="96k")
    parser.add_argument("--upload-kb", type=int, default=32)
    args = parser.parse_args()
    # The board logs main.py's KeyboardInterrupt when mpremote connects: expected here.
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        flash = Path(tmp) / "flash"
        flash.mkdir()
        (flash / "main.py").write_text("import time\nwhile True:\n    time.sleep_ms(10)\n")
        start = time.perf_counter()
        board = VirtualBoard(flash, heap=args.heap).start()
        try:
            while board.state != "main.py":
                time.sleep(0.001)
            print(f"power-up to main.py running:        {1000 * (time.perf_counter() - start):7.1f} ms")

            t, _ = timed(mpremote, board.url, "exec", "pass")
            print(f"mpremote exec (process, connect, soft reset): {1000 * t:7.1f} ms")
            n = 20
            chain: list[str] = []
            for _ in range(n):
                chain += ["exec", "pass", "+"]
            t_chain, _ = timed(mpremote, board.url, *chain[:-1])
            t_one, _ = timed(mpremote, board.url, "exec", "pass")
            print(f"exec inside one mpremote session:    {1000 * (t_chain - t_one) / (n - 1):7.1f} ms each")

            payload = Path(tmp) / "blob.bin"
            payload.write_bytes(os.urandom(args.upload_kb * 1024))
            t, _ = timed(mpremote, board.url, "fs", "cp", str(payload), ":blob.bin")
            print(
                f"fs cp {args.upload_kb} KB upload:                  {args.upload_kb / t:7.1f} KB/s ({t:.2f} s)"
            )
            t, out = timed(mpremote, board.url, "fs", "cp", str(payload), ":blob.bin")
            assert "Up to date" in out
            print(f"fs cp same file again (sha256 check): {1000 * t:7.1f} ms")
            free = mpremote(board.url, "exec", "import gc; gc.collect(); print(gc.mem_free())").strip()
            print(f"free heap at the raw REPL (heap {args.heap}): {int(free) / 1024:7.1f} KB")
        finally:
            board.stop()


if __name__ == "__main__":
    main()
