"""The virtual board: a REPL server around a real MicroPython interpreter; imports the simulator's shims and the core."""
