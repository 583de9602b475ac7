"""Test harnesses shared by tests and benchmarks (the fault-injection soak)."""
