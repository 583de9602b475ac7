"""The step-trainer board's MicroPython firmware and its build/flash tools: imports the core only."""
