"""`stedi firmware` commands: build, flash, info."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from stedi.settings import DEFAULT_SAMPLE_RATE_HZ

log = logging.getLogger(__name__)

app = typer.Typer(
    no_args_is_help=True,
    help="Build, flash and inspect the MicroPython board firmware (BLE protocol: docs/ble-protocol.md).",
)

PortOption = Annotated[
    str,
    typer.Option(
        "--port", "-p",
        help="Where mpremote finds the board: /dev/ttyUSB0, COM3, socket://127.0.0.1:7001 (a virtual board), id:...",
    ),
]


def _fail(message: str) -> None:
    # Exit 2 (stedi/errors.py): a bad option, or a port that is not a board: fix the command line.
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command()
def build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the built firmware (created).")] = Path(
        "build/firmware"
    ),
) -> None:
    """Precompile the board modules to .mpy with mpy-cross.

    boot.py, main.py and config.json stay source; every other module under firmware/board
    becomes a .mpy file.  The .mpy version is printed: the board's sys.implementation._mpy
    must match it (`stedi firmware flash` checks that first).
    """
    from rich.progress import Progress

    from firmware.build import FirmwareError, board_modules
    from firmware.build import build as do_build

    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("mpy-cross", total=len(board_modules()))
            result = do_build(out, progress=lambda _name: progress.advance(task))
    except FirmwareError as e:
        _fail(str(e))
        return
    typer.echo(f"built {len(result.compiled)} .mpy modules (mpy {result.mpy}) and "
               f"{len(result.copied)} source files in {out}")


@app.command()
def flash(
    port: PortOption,
    serial: Annotated[str, typer.Option("--serial", "-s", help="The step trainer's serial number (a UUID).")],
    sensor: Annotated[
        str, typer.Option("--sensor", help="Distance sensor: hcsr04, vl53l0x or sim (synthetic, no hardware).")
    ] = "sim",
    rate: Annotated[int, typer.Option("--rate", help="Sampling rate in Hz (1..50).", min=1, max=50)] = (
        DEFAULT_SAMPLE_RATE_HZ
    ),
    buffer: Annotated[
        int | None, typer.Option("--buffer", help="Ring buffer capacity in readings (6 bytes each). Default 3000.")
    ] = None,
    board: Annotated[
        str, typer.Option("--board", help="The board: esp32 (NimBLE) or picow (Raspberry Pi Pico W, rp2 port).")
    ] = "esp32",
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--config", "-c",
            help="Another config.json setting, KEY=VALUE (VALUE as JSON), repeatable: pins.scl=5, pins.sda=4, "
            "i2c_bus=1, watchdog_ms=8000, battery_adc_pin=26, ...",
        ),
    ] = None,
    reset: Annotated[bool, typer.Option("--reset/--no-reset", help="Reset the board afterwards.")] = True,
) -> None:
    """Build the firmware and deploy it to a board with mpremote.

    The config is checked first as the firmware checks it at boot: pins the board's port would
    refuse (on a Pico W, I2C wants an odd SCL and an even SDA GPIO of the bus) and watchdog
    timeouts beyond its limit (8388 ms on a Pico W) are refused with the port's rule, before
    anything is flashed.  Then the board's sys.implementation._mpy is checked against mpy-cross
    (a clear error instead of "incompatible .mpy file" at boot) and its sys.platform against
    --board; only files that changed are copied (mpremote compares sha256); config.json gets
    the serial number, board, sensor, rate and --config settings; the board is reset.
    Without --config pins, the board's default wiring is used (docs/ble-protocol.md).
    """
    from rich.console import Console

    from firmware.build import FirmwareError
    from firmware.build import build as do_build
    from firmware.deploy import SENSORS, check_port, make_config
    from firmware.deploy import flash as do_flash

    if sensor not in SENSORS:
        _fail(f"--sensor must be one of {', '.join(SENSORS)}; got {sensor!r}")
    console = Console(stderr=True)
    try:
        # Checked against the shipped template before building or touching the port.
        template_path = Path(__file__).resolve().parent / "board" / "config.json"
        make_config(json.loads(template_path.read_text()), serial, sensor, rate, buffer, board=board,
                    settings=settings or ())
        check_port(port)
        with tempfile.TemporaryDirectory(prefix="stedi-firmware-") as tmp:
            with console.status("building with mpy-cross"):
                built = do_build(Path(tmp) / "build")
            template = json.loads((built.out / "config.json").read_text())
            config = make_config(template, serial, sensor, rate, buffer, board=board, settings=settings or ())
            with console.status(f"flashing {port} with mpremote"):
                report = do_flash(port, built, config, reset=reset)
    except FirmwareError as e:
        _fail(str(e))
        return
    typer.echo(f"flashed {port}: {len(report.copied)} copied, {len(report.up_to_date)} up to date "
               f"(mpy {report.board_mpy}); serial {config['serial']}, board {config['board']}, "
               f"sensor {config['sensor']}, "
               f"{config['rate_hz']} Hz" + ("; board reset" if reset else ""))
    for name in report.copied:
        typer.echo(f"  copied {name}")


@app.command()
def info(
    port: PortOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
    reset: Annotated[bool, typer.Option(
        "--reset/--no-reset", help="Restart the firmware afterwards (the default), or leave the board at its REPL.")] = True,
) -> None:
    """Firmware version, config and free heap of a board.

    Connecting interrupts the running firmware (mpremote soft-resets into the raw REPL), so the free heap is that of an idle interpreter; afterwards the board is reset and runs its firmware again (--no-reset leaves it stopped at the REPL, e.g. to use `mpremote repl`).
    """
    from firmware.build import FirmwareError
    from firmware.deploy import info as do_info

    try:
        data = do_info(port, reset=reset)
    except FirmwareError as e:
        _fail(str(e))
        return
    if as_json:
        typer.echo(json.dumps(data, indent=1, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"board on {port}", show_header=False)
    table.add_row("firmware", str(data.get("firmware") or "not installed"))
    table.add_row("MicroPython", f"{data.get('micropython')} ({data.get('platform')}), mpy {data.get('mpy')}")
    table.add_row("free heap", f"{data.get('mem_free')} bytes ({data.get('mem_alloc')} allocated)")
    config = data.get("config")
    if config is None:
        table.add_row("config.json", f"missing or unreadable {data.get('config_error', '')}")
    else:
        for key in sorted(config):
            table.add_row(f"config {key}", json.dumps(config[key]))
    Console().print(table)
