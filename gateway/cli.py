"""`stedi gateway` commands: run the gateway, show its status, register customers, record consent.

Heavy imports (bleak, boto3, paho) stay inside the commands so `stedi --help` stays fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from gateway.status import GatewayStatus

app = typer.Typer(
    no_args_is_help=True,
    help="The phone-app stand-in: BLE central, consent, durable spool, upload to the landing zone, MQTT.",
)

HOME_HELP = "Gateway home folder (spool, gateway.toml, status). Default: $STEDI_HOME or ~/.stedi."


def _home(home: Path | None) -> Path:
    from gateway.config import resolve_home

    return resolve_home(home)


def _fail(message: str, code: int = 2) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@app.command()
def run(
    home: Annotated[Path | None, typer.Option("--home", help=HOME_HELP)] = None,
    ble: Annotated[str | None, typer.Option("--ble", help="BLE backend: 'bleak' (real adapters, the default) or sim://HOST:PORT (the simulator's radio).")] = None,
    lake: Annotated[str | None, typer.Option("--lake", help="Lake: a folder or s3://bucket/prefix. Default: $STEDI_LAKE or HOME/lake.")] = None,
    mqtt: Annotated[str | None, typer.Option("--mqtt", help="Telemetry broker: mqtt://HOST:PORT or mqtts://HOST:PORT (TLS).")] = None,
    mqtt_username: Annotated[str | None, typer.Option("--mqtt-username", help="MQTT user name.")] = None,
    mqtt_ca_file: Annotated[str | None, typer.Option("--mqtt-ca-file", help="CA bundle for mqtts:// (else the system's).")] = None,
    accel: Annotated[str | None, typer.Option("--accel", help="Phone accelerometer: plyer (the default), sim or replay:FILE (JSON lines t,x,y,z).")] = None,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop after this many seconds (then upload everything).")] = None,
    batch_bytes: Annotated[int | None, typer.Option("--batch-bytes", help="Upload a batch when it reaches this size (default 5 MiB).")] = None,
    batch_age: Annotated[float | None, typer.Option("--batch-age", help="...or when its oldest reading waited this long (s, default 60).")] = None,
    gzip: Annotated[bool | None, typer.Option("--gzip/--no-gzip", help="Store landing files gzip-compressed (.json.gz).")] = None,
    sse: Annotated[str | None, typer.Option("--sse", help="S3 server-side encryption: AES256 (SSE-S3) or aws:kms.")] = None,
    kms_key_id: Annotated[str | None, typer.Option("--kms-key-id", help="KMS key for --sse aws:kms.")] = None,
    spool_max: Annotated[int | None, typer.Option("--spool-max", help="Spool cap in readings; when full, boards are not acknowledged.")] = None,
    hold_unconsented: Annotated[bool | None, typer.Option(
        "--hold-unconsented/--upload-unconsented",
        help="Keep readings of customers without research consent on this device (never uploaded).",
    )] = None,
    live: Annotated[bool, typer.Option("--live/--no-live", help="Show the live status view.")] = True,
) -> None:
    """Run the gateway: serve boards, spool readings, upload batches, publish telemetry.

    Flags override HOME/gateway.toml, which overrides the built-in defaults (docs/gateway.md lists the keys).

    The first Ctrl-C (or SIGTERM, or the end of --duration) stops taking readings and uploads everything spooled; a second one exits at once, the spool keeping what is left. Exit status: 0 done, 3 upload stopped on a permanent error, 130 stopped at once.
    """
    import asyncio

    from gateway.accel import AccelError
    from gateway.ble import BleConfigError
    from gateway.config import ConfigError, load
    from gateway.service import Gateway
    from gateway.spool import SpoolError
    from gateway.telemetry import TelemetryError
    from stedi.lake import LakeError

    where = _home(home)
    overrides: dict[str, Any] = {
        "ble": ble, "lake": lake, "mqtt": mqtt, "mqtt_username": mqtt_username, "mqtt_ca_file": mqtt_ca_file,
        "accel": accel, "batch_bytes": batch_bytes, "batch_age_s": batch_age, "gzip": gzip, "sse": sse,
        "kms_key_id": kms_key_id, "spool_max_readings": spool_max, "hold_unconsented": hold_unconsented,
    }
    try:
        config = load(where, overrides)
        gateway = Gateway(where, config)
    except (ConfigError, AccelError, BleConfigError, SpoolError, TelemetryError, LakeError) as exc:
        _fail(f"gateway cannot start: {exc}")
        return
    if live:
        from rich.live import Live

        with Live(_view(gateway.snapshot()), refresh_per_second=2, transient=False) as view:
            code = asyncio.run(gateway.run(duration, on_tick=lambda g: view.update(_view(g.snapshot()))))
    else:
        code = asyncio.run(gateway.run(duration))
    if code == 3:
        _fail(gateway.error or "upload stopped", 3)
    if code == 130:
        # Second signal: exit now, without waiting for a put in flight (the spool keeps its batch).
        import logging
        import os
        import sys

        logging.shutdown()
        sys.stderr.flush()
        os._exit(130)
    raise typer.Exit(code)


def _view(snap: GatewayStatus) -> Any:
    from rich.table import Table

    table = Table(title=f"STEDI gateway {snap.gateway} ({snap.phase})", caption=_summary(snap))
    for col in ("board", "link", "boot", "readings", "bad frames", "battery", "board buffer", "clock offset"):
        table.add_column(col)
    for b in snap.boards:
        table.add_row(
            b.serial, "connected" if b.connected else "away", str(b.boot_id), str(b.readings),
            str(b.bad_frames), "?" if b.battery_pct is None else f"{b.battery_pct}%",
            "?" if b.buffer_fill is None else f"{b.buffer_fill:.0%}",
            "?" if b.clock_offset_ms is None else f"{b.clock_offset_ms} ms",
        )
    return table


def _summary(snap: GatewayStatus) -> str:
    last = snap.last_upload_ms
    ago = "never" if not last else f"{(time.time() * 1000 - last) / 1000:.0f}s ago"
    text = (f"{snap.readings_per_s} readings/s | spool {snap.spool_depth} "
            f"({snap.spool_fill:.1%} of {snap.spool_cap}) | uploaded {snap.uploaded_readings} "
            f"readings, last upload {ago} | lake {snap.lake}")
    if snap.upload_error:
        text += f" | upload: {snap.upload_error}"
    return text


@app.command()
def status(
    home: Annotated[Path | None, typer.Option("--home", help=HOME_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the spool (depth, fill, batches, held readings, resume points) and the last run's status."""
    from gateway.spool import SPOOL_FILE, Spool
    from gateway.status import STATUS_FILE, GatewayStatus

    where = _home(home)
    if not (where / SPOOL_FILE).exists():
        _fail(f"no gateway spool in {where} (run `stedi gateway run --home {where}` or register a customer first)")
    from gateway.config import ConfigError, load

    try:
        cap = load(where).spool_max_readings
    except ConfigError:
        cap = 1_000_000
    spool = Spool(where, max_readings=cap)
    try:
        stats = spool.stats()
        marks = list(spool.watermarks())
    finally:
        spool.close()
    snap = GatewayStatus.read(where) if (where / STATUS_FILE).exists() else None
    out: dict[str, Any] = {
        "home": str(where),
        "spool_depth": stats.pending,
        "open_batches": stats.batches,
        "held_on_device": stats.held,
        "customer_records_waiting": stats.customer_events,
        "uploaded_readings": stats.uploaded_readings,
        "uploaded_objects": stats.uploaded_objects,
        "last_upload_ms": stats.last_upload_ms,
        "resume_points": [{"serial": s, "boot": b, "last_seq": q} for s, b, q in marks],
        "last_run": dataclasses.asdict(snap) if snap else {},
    }
    cap = snap.spool_cap if snap else stats.max_readings
    out["spool_cap"] = cap
    out["spool_fill"] = round(stats.pending / cap, 4) if cap else 0.0
    if as_json:
        typer.echo(json.dumps(out, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"gateway spool in {where}", show_header=False)
    for key in ("spool_depth", "spool_fill", "open_batches", "held_on_device", "customer_records_waiting",
                "uploaded_readings", "uploaded_objects", "last_upload_ms"):
        table.add_row(key, str(out[key]))
    if snap:
        age = (time.time() * 1000 - snap.time) / 1000
        table.add_row("last run", f"{snap.phase} ({age:.0f}s ago, pid {snap.pid}), lake {snap.lake}")
        if snap.upload_error:
            table.add_row("upload error", str(snap.upload_error))
    console.print(table)
    if marks:
        boards = Table(title="resume points (last durably spooled seq)")
        for col in ("board", "boot", "last seq"):
            boards.add_column(col)
        for s, b, q in marks:
            boards.add_row(s, str(b), str(q))
        console.print(boards)


def _upload_customer_records(where: Path, lake: str | None, spool: Any) -> None:
    """Try to take the new customer record to the lake now; if that fails it waits in the spool."""
    from gateway.config import ConfigError, load
    from gateway.service import upload_settings
    from gateway.uploader import PermanentUploadError, Uploader, open_gateway_lake

    try:
        config = load(where, {"lake": lake})
        uploader = Uploader(spool, open_gateway_lake(config.lake), upload_settings(config))
        uploader.settings.backoff_max_s = 2.0
        n = uploader.upload_customers(max_attempts=3)
        typer.echo(f"customer record uploaded to {config.lake}" if n else "no customer record waiting")
    except (ConfigError, PermanentUploadError) as exc:
        typer.secho(f"customer record kept in the spool, not uploaded: {exc}", fg=typer.colors.YELLOW, err=True)
    except Exception as exc:  # noqa: BLE001 - transient: `gateway run` uploads it later
        typer.secho(f"customer record kept in the spool for `gateway run` ({exc})", fg=typer.colors.YELLOW,
                    err=True)


@contextlib.contextmanager
def _customer_change(home: Path | None, lake: str | None, upload: bool) -> Iterator[Any]:
    """The registry of customers in the gateway's home; after the change in the ``with`` block
    its landing record is uploaded (or left in the spool for `gateway run`)."""
    from gateway.customers import CustomerError, Customers
    from gateway.spool import Spool

    where = _home(home)
    spool = Spool(where)
    try:
        yield Customers(spool)
        if upload:
            _upload_customer_records(where, lake, spool)
    except CustomerError as exc:
        _fail(str(exc))
    finally:
        spool.close()


@app.command()
def register(
    email: Annotated[str, typer.Option("--email", help="The customer's email: their key across the lake.")],
    name: Annotated[str, typer.Option("--name", help="Full name.")],
    phone: Annotated[str, typer.Option("--phone", help="Phone number.")],
    birthday: Annotated[str, typer.Option("--birthday", help="Birthday, YYYY-MM-DD.")],
    serial: Annotated[str, typer.Option("--serial", help="Serial number (UUID) of the customer's step trainer.")],
    home: Annotated[Path | None, typer.Option("--home", help=HOME_HELP)] = None,
    lake: Annotated[str | None, typer.Option("--lake", help="Upload the customer record to this lake now (default: config).")] = None,
    upload: Annotated[bool, typer.Option("--upload/--no-upload", help="Upload now, or leave it to `gateway run`.")] = True,
) -> None:
    """Register a customer and their step trainer (writes a customer landing record)."""
    with _customer_change(home, lake, upload) as customers:
        customer = customers.register(email=email, name=name, phone=phone, birthday=birthday, serial=serial)
        typer.echo(f"registered {customer.email} with board {customer.serial}")


class Action(StrEnum):
    grant = "grant"
    withdraw = "withdraw"


class Scope(StrEnum):
    research = "research"
    public = "public"
    friends = "friends"


@app.command()
def consent(
    action: Annotated[Action, typer.Argument(help="grant or withdraw")],
    scope: Annotated[Scope, typer.Argument(help="research, public or friends")],
    email: Annotated[str, typer.Option("--email", help="The registered customer's email.")],
    home: Annotated[Path | None, typer.Option("--home", help=HOME_HELP)] = None,
    lake: Annotated[str | None, typer.Option("--lake", help="Upload the customer record to this lake now (default: config).")] = None,
    upload: Annotated[bool, typer.Option("--upload/--no-upload", help="Upload now, or leave it to `gateway run`.")] = True,
) -> None:
    """Grant or withdraw a consent (writes a customer landing record with the consent dates)."""
    with _customer_change(home, lake, upload) as customers:
        c = customers.consent(email, action.value, scope.value)  # type: ignore[arg-type]
        typer.echo(f"{action.value} {scope.value} for {c.email}: research={c.research} public={c.public} "
                   f"friends={c.friends}")
