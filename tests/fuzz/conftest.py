"""The fuzz suite's closing figures: inputs tried and bad items counted per target."""

from __future__ import annotations

from typing import Any

from tests.fuzz.tally import summary_lines


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = summary_lines()
    if lines:
        terminalreporter.section("fuzz inputs")
        for line in lines:
            terminalreporter.write_line(line)
