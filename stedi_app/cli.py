"""The ``stedi`` command: one entry point, one group per part of the system.

Each part owns its group in its own ``cli.py``; this module only assembles them.
Part modules keep heavy imports (Spark, bleak, boto3) inside their commands so
that ``stedi --help`` stays fast.
"""

from __future__ import annotations

import typer

from cloud_pipeline.cli import app as pipeline_app
from cloud_pipeline.cli import query as query_command
from firmware.cli import app as firmware_app
from gateway.cli import app as gateway_app
from simulator.cli import app as sim_app
from stedi import __version__
from stedi.errors import EXIT_INTERRUPTED, EXIT_UNEXPECTED, UserError
from stedi.settings import setup_logging
from stedi_app.demo import demo as demo_command
from stedi_app.warm_up import warm_up

app = typer.Typer(
    name="stedi",
    help=(
        "STEDI step trainer: board firmware, BLE gateway, Spark lakehouse and a hardware-free simulator.\n\n"
        "Data path: board -> BLE -> gateway -> spool -> landing -> trusted -> curated."
    ),
    no_args_is_help=True,
    add_completion=False,
    # Docstrings are paragraphs: reflow them to the terminal instead of keeping source line breaks.
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(firmware_app, name="firmware", help="Build, flash and inspect the MicroPython board firmware.")
app.add_typer(sim_app, name="sim", help="Hardware-free twins: virtual boards, BLE radio, physics, customer fleets.")
app.add_typer(gateway_app, name="gateway", help="The phone-app stand-in: BLE central, consent, spool, upload, MQTT.")
pipeline_app.command("warm-up")(warm_up)
app.add_typer(pipeline_app, name="pipeline", help="Build the trusted and curated zones from the landing zone (Spark).")
app.command("query")(query_command)
app.command("demo")(demo_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stedi {__version__}")
        raise typer.Exit()


_debug = False


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages too."),
    debug: bool = typer.Option(False, "--debug", help="On an error, show the full traceback too."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    global _debug
    _debug = debug
    try:
        setup_logging(verbose)
    except ValueError as exc:  # STEDI_LOG_FORMAT unknown
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def main() -> None:
    """Run the command; an error ends in one message and a documented exit code (stedi/errors.py)."""
    import sys

    try:
        app()
    except SystemExit:
        raise
    except UserError as exc:
        if _debug:
            raise
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if _debug:
            raise
        typer.secho(
            f"error: unexpected {type(exc).__name__}: {exc}\n  this is a defect in stedi; "
            "run again with --debug (stedi --debug ...) for the traceback and report it",
            fg=typer.colors.RED,
            err=True,
        )
        sys.exit(EXIT_UNEXPECTED)


if __name__ == "__main__":
    main()
