"""The board's MicroPython modules (not flashed: firmware/build.py NOT_FLASHED); import only each other."""
