"""The `stedi` command: six groups, help at every level, unbuilt groups say so."""

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from stedi_app.cli import app

GROUPS = ("firmware", "sim", "gateway", "pipeline", "query", "demo")


def test_installed_console_script_lists_the_six_groups() -> None:
    script = Path(sys.executable).parent / "stedi"
    assert script.exists(), "the stedi console script is not installed in this environment"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=True).stdout
    for group in GROUPS:
        assert group in out


def test_every_group_has_help() -> None:
    runner = CliRunner()
    for group in GROUPS:
        result = runner.invoke(app, [group, "--help"])
        assert result.exit_code == 0, (group, result.output)
        assert "Usage" in result.output


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("stedi ")
