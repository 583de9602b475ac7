"""The `stedi` command: six groups registered, help at every level, a working console script."""

import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from stedi_app.cli import app

GROUPS = ("firmware", "sim", "gateway", "pipeline", "query", "demo")


def test_the_six_groups_are_registered() -> None:
    # Read off the click command the app builds, not off help text (whose prose names the parts too).
    root = typer.main.get_command(app)
    assert isinstance(root, typer.core.TyperGroup)
    assert sorted(root.commands) == sorted(GROUPS)


def test_installed_console_script_runs_the_app() -> None:
    script = Path(sys.executable).parent / "stedi"
    assert script.exists(), "the stedi console script is not installed in this environment"
    out = subprocess.run([str(script), "pipeline", "--help"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    # A subcommand only the pipeline group has: the script reached the app's own groups.
    assert "warm-up" in out


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
