"""`stedi sim radio`."""

from __future__ import annotations

import typer

from stedi.errors import UserError


def radio(
    listen: str = typer.Option(
        "127.0.0.1:9000", "--listen", "-l", help="HOST:PORT to listen on (port 0 picks a free one)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the fault generator: the same seed replays the same faults."),
    loss: float = typer.Option(
        0.0,
        "--loss",
        help="Probability (0-1) that an advertisement is missed or a data packet must be sent again (a delay).",
    ),
    disconnect_rate: float = typer.Option(
        0.0, "--disconnect-rate", help="Probability per second (0-1) that each live link drops."
    ),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Delay of every frame through the air (ms)."),
    jitter_ms: float = typer.Option(0.0, "--jitter-ms", help="Random extra delay up to this (ms); order is kept."),
    conn_interval_ms: float = typer.Option(
        0.0, "--conn-interval-ms", help="Airtime budget: connection interval of every link, 7.5-4000 ms (0: unlimited)."
    ),
    packets_per_event: int = typer.Option(
        6, "--packets-per-event", help="Airtime budget: data packets (notifications) per connection interval."
    ),
    out_of_range: list[str] | None = typer.Option(  # noqa: B008 - typer reads options from defaults
        None, "--out-of-range", help="Board id or address nobody can hear (repeatable)."
    ),
    send: list[str] | None = typer.Option(  # noqa: B008 - typer reads options from defaults
        None,
        "--send",
        help=(
            "Do not start a radio: send this control frame to the radio at --listen and print its "
            'answer (repeatable), e.g. --send \'{"t":"faults","loss":0.2}\' or --send \'{"t":"status"}\'.'
        ),
    ),
) -> None:
    """Run the virtual BLE radio: a bumble hub, the shared air between virtual boards and gateways.

    Boards reach it through their `bluetooth` shim (env STEDI_RADIO=HOST:PORT, set by
    `stedi sim board --radio`); gateways through the bleak backend (`--ble sim://HOST:PORT`).
    Faults can also be changed while it runs with a control frame, for example
    `stedi sim radio --listen 127.0.0.1:9000 --send '{"t":"faults","loss":0.2}'`
    (frames in docs/simulator-radio.md).  Stop it with Ctrl-C or SIGTERM.
    """
    import asyncio
    import logging
    import signal

    from simulator.radio.faults import Faults
    from simulator.radio.protocol import parse_hostport
    from simulator.radio.server import Radio

    host, port = parse_hostport(listen)
    if send:
        _send_control(host, port, send)
        return
    try:
        faults = Faults()
        faults.update(
            {
                "loss": loss,
                "disconnect_per_s": disconnect_rate,
                "latency_ms": latency_ms,
                "jitter_ms": jitter_ms,
                "out_of_range": out_of_range or [],
                "conn_interval_ms": conn_interval_ms,
                "packets_per_event": packets_per_event,
            }
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    the_radio = Radio(host, port, faults=faults, seed=seed)

    async def run() -> None:
        await the_radio.start()
        typer.echo(f"radio listening on sim://{host}:{the_radio.port}", err=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        try:
            await stop.wait()
        finally:
            await the_radio.close()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        logging.getLogger(__name__).info("radio stopped")
    except OSError as exc:
        raise cannot_listen(listen, exc, "radio") from exc


def cannot_listen(listen: str, exc: OSError, what: str) -> UserError:
    """A listening socket that could not be opened, as one message with the way out (exit 2)."""
    import errno

    host, _, _port = listen.rpartition(":")
    if exc.errno == errno.EADDRINUSE:
        reason = "the port is already in use (another radio or board, or another program, listens there)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        reason = f"{host} is not an address of this machine"
    elif exc.errno == errno.EACCES:
        reason = "ports below 1024 need privileges"
    else:
        reason = exc.strerror or str(exc)
    return UserError(f"the {what} cannot listen on {listen}: {reason}",
                     hint=f"pick another port, or --listen {host or '127.0.0.1'}:0 for a free one (it is printed)")


def _send_control(host: str, port: int, frames: list[str]) -> None:
    import json
    import socket

    for text in frames:
        try:
            frame = json.loads(text)
        except ValueError as exc:
            raise typer.BadParameter(f"--send needs a JSON object: {exc}") from exc
        try:
            with socket.create_connection((host, port), timeout=5) as conn:
                conn.sendall(json.dumps(frame).encode() + b"\n")
                answer = conn.makefile("rb").readline()
        except OSError as exc:
            typer.echo(f"no radio at {host}:{port}: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(answer.decode().strip())
        if b'"t":"error"' in answer.replace(b" ", b""):
            raise typer.Exit(1)
