"""`stedi sim board`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_FLASH = Path("board-flash")


def board(
    listen: str = typer.Option(
        "127.0.0.1:7001",
        "--listen",
        help="HOST:PORT of the board's console; then `mpremote connect socket://HOST:PORT ...`. Port 0 picks a free one.",
    ),
    flash: Annotated[
        Path,
        typer.Option(
            "--flash",
            help="Folder that is the board's flash (its '/'): boot.py, main.py, lib/. Created if missing.",
        ),
    ] = DEFAULT_FLASH,
    heap: str = typer.Option(
        "96k", "--heap", help="MicroPython heap size, like a real board's RAM (e.g. 96k, 256k)."
    ),
    radio: str | None = typer.Option(
        None,
        "--radio",
        help="HOST:PORT of a `stedi sim radio`; the board's bluetooth shim uses it (env STEDI_RADIO).",
    ),
    board_id: str | None = typer.Option(
        None, "--id", help="The board's name on the radio (env STEDI_BOARD_ID). Default: board-PORT, PORT being the --listen port.",
    ),
    profile: str = typer.Option(
        "esp32",
        "--profile",
        help="The port the board behaves as: esp32 (NimBLE) or picow (Raspberry Pi Pico W, BTstack). "
        "Its pin, I2C, ADC and watchdog rules and its BLE back-pressure apply (docs/simulator.md).",
    ),
    airtime: str | None = typer.Option(
        None,
        "--airtime",
        help="RATE[/BUFFERS]: notifications per second the BLE link carries and the controller's "
        "buffers (default 200/8); a lower rate shows the stack's back-pressure.",
    ),
    pty: bool = typer.Option(
        False,
        "--pty",
        help="Also offer the console on a pseudo-terminal (/dev/pts/N), for `mpremote connect /dev/pts/N repl`.",
    ),
    pty_link: Annotated[
        Path | None,
        typer.Option(
            "--pty-link", help="Make a symlink to the pseudo-terminal here (implies --pty), e.g. ./board.tty."
        ),
    ] = None,
) -> None:
    """Run a virtual board: a real MicroPython interpreter whose console is a TCP port.

    Power-up runs boot.py then main.py from the flash folder, like a board.  The console
    speaks MicroPython's REPL protocols, so the real mpremote works against it: fs ls/cp/cat/rm,
    exec, run, soft-reset, reset, resume (and `repl` through --pty).  Ctrl-C stops the board.
    """
    import asyncio
    import logging
    import signal

    from simulator.board.server import VirtualBoard, parse_hostport

    try:
        host, port = parse_hostport(listen, what="--listen")
        virtual = VirtualBoard(
            flash,
            heap=heap,
            radio=radio,
            board_id=board_id,
            host=host,
            port=port,
            pty=pty_link if pty_link is not None else pty,
            profile=profile,
            airtime=airtime,
        )
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(f"virtual board ({profile}): flash {virtual.flash}, heap {heap}; Ctrl-C to stop")

    async def serve_until_signalled() -> None:
        # SIGTERM (and SIGINT, which a shell ignores in background jobs) power the board off
        # cleanly: the interpreter is killed and a --pty-link removed.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, virtual.request_stop)
        await virtual.serve()

    try:
        asyncio.run(serve_until_signalled())
        logging.getLogger(__name__).info("stopped")
    except OSError as e:
        from simulator.radio.cli import cannot_listen

        raise cannot_listen(listen, e, "virtual board") from e
