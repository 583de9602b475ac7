"""The virtual board: a REPL server around a real MicroPython interpreter."""
