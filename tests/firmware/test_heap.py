"""The default configuration fits a 96 KiB heap with at least 15 KiB free, after start and while
streaming (built .mpy modules, as flashed; the recording bluetooth fake counts against the heap).

Figures of the 64-bit unix port, whose objects are about twice their size on a 32-bit board: a
guard against growth, not the board's headroom.  It was 16 KiB until the firmware took on what
the real ports need (fixed IRQ write slots, the Pico W's heap guard, the retry paths: about
1.5 KiB here); measured then: 20.4 KiB after start, 16.4 KiB lowest while streaming."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.firmware.helpers import run_board
from tests.parts import MicroPython

MIN_FREE = 15 * 1024


def test_default_capacity_leaves_15k_free(micropython: MicroPython, built_dir: Path, tmp_path: Path,
                                          profile: str) -> None:
    config = json.loads((built_dir / "config.json").read_text())
    assert "buffer_readings" not in config, "the shipped config.json must use the default capacity"
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(dict(config, serial="3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab", batch_ms=500,
                                   board=profile)))
    out = run_board(micropython, f"import heap_probe\nheap_probe.main({str(cfg)!r}, 2500)\n", board=built_dir,
                    profile=profile)
    m = re.search(r"HEAP after_start (\d+) streaming_min (\d+) frames (\d+) readings (\d+) capacity (\d+)", out)
    assert m, out
    after_start, streaming_min, frames, readings, capacity = map(int, m.groups())
    assert capacity == 3000
    assert frames >= 3 and readings >= 40, out
    assert after_start >= MIN_FREE and streaming_min >= MIN_FREE, out
