# Runs at every boot after boot.py: start the STEDI board (see app.py).
# The ring buffer is the one large block: allocate it before importing the rest,
# while the heap is in one piece (a 96 KiB heap fragments easily).
import gc
import sys

import config
import ringbuf

# A flash in progress: this one boot runs without the watchdog (config.FLASH_PENDING).  Taken
# first, so that it is used up even if the config below fails.
flashing = config.take_flash_pending()
cfg = config.load()
del sys.modules["config"]  # the defaults table is not needed any more
gc.collect()
ring = ringbuf.ReadingRing(cfg["buffer_readings"])

import asyncio  # noqa: E402

import app  # noqa: E402

# A global, not a local of a function: after Ctrl-C the REPL can still inspect the board
# (board.boot_id, board.ring.next, board.ring.oldest), e.g. just before a reset.
board = app.start(config=cfg, ring=ring, watchdog=not flashing)
asyncio.run(board.run())
