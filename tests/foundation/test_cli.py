"""The `stedi` command: six groups registered, help at every level, a working console script."""

import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from stedi_app.cli import app
from tests.parts import run_main

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


def test_a_user_error_is_one_message_and_its_exit_code_and_debug_shows_the_traceback(monkeypatch, capsys) -> None:
    from cloud_pipeline.cli import app as pipeline_app
    from stedi.errors import LakeBusyError, UserError

    def no_lake() -> None:
        raise UserError("no lake at /no/such", hint="create it with --create")

    def busy() -> None:
        raise LakeBusyError("another run holds this lake")

    def defect() -> None:
        raise ValueError("a bug")

    for name, fn in (("t-no-lake", no_lake), ("t-busy", busy), ("t-defect", defect)):
        pipeline_app.command(name)(fn)
    try:
        code, _, err = run_main(monkeypatch, capsys, "pipeline", "t-no-lake")
        assert (code, err) == (2, "error: no lake at /no/such\n  hint: create it with --create\n")
        code, _, err = run_main(monkeypatch, capsys, "pipeline", "t-busy")
        assert code == 4
        code, _, err = run_main(monkeypatch, capsys, "pipeline", "t-defect")
        assert code == 70 and "unexpected ValueError: a bug" in err and "--debug" in err and "Traceback" not in err
        monkeypatch.setattr(sys, "argv", ["stedi", "--debug", "pipeline", "t-no-lake"])
        from stedi_app import cli

        try:
            cli.main()
        except UserError as exc:  # --debug lets the exception through, traceback and all
            assert exc.exit_code == 2
        else:
            raise AssertionError("--debug did not let the error through")
    finally:
        pipeline_app.registered_commands[:] = [
            c for c in pipeline_app.registered_commands if c.name not in ("t-no-lake", "t-busy", "t-defect")
        ]
        cli_mod = sys.modules["stedi_app.cli"]
        cli_mod._debug = False
