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
REBIND_HELP = ("Move this home to the lake named by --lake (its customers' records are sent there again) "
               "instead of refusing a lake other than the bound one.")
CUSTOMER_LAKE_HELP = ("Upload the customer record to this lake now. Default: the lake this home is bound to "
                      "(a different one is refused unless --rebind).")
LAKE_HELP = ("Lake: a folder or s3://bucket/prefix. Default: the lake this home is bound to, else gateway.toml, "
             "$STEDI_LAKE or ~/.stedi/lake. The first command that sends to a lake binds the home to it.")


def _home(home: Path | None) -> Path:
    from gateway.config import resolve_home

    return resolve_home(home)


def _bound(where: Path, requested: str | None, fallback: str, *, rebind: bool, write: bool) -> Any:
    """The lake this command uses, bound to the home (gateway/binding.py)."""
    from gateway.binding import bind
    from gateway.spool import Spool

    spool = Spool(where)
    try:
        binding = bind(spool, requested, fallback, rebind=rebind, write=write)
    finally:
        spool.close()
    if binding.changed and binding.previous is not None:
        typer.secho(f"gateway home re-bound from {binding.previous} to {binding.lake}; {binding.requeued} "
                    "customer records queued for the new lake", fg=typer.colors.YELLOW, err=True)
    return binding


def configured_lake(where: Path) -> str | None:
    """The lake gateway.toml names (None: it names none)."""
    from gateway.config import ConfigError, load_file

    try:
        return load_file(where).get("lake") or None
    except ConfigError:
        return None  # load() reports it


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@app.command()
def run(
    home: Annotated[Path | None, typer.Option("--home", help=HOME_HELP)] = None,
    ble: Annotated[str | None, typer.Option("--ble", help="BLE backend: 'bleak' (real adapters, the default) or sim://HOST:PORT (the simulator's radio).")] = None,
    lake: Annotated[str | None, typer.Option("--lake", help=LAKE_HELP)] = None,
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
    rebind: Annotated[bool, typer.Option("--rebind", help=REBIND_HELP)] = False,
) -> None:
    """Run the gateway: serve boards, spool readings, upload batches, publish telemetry.

    Flags override HOME/gateway.toml, which overrides the built-in defaults (docs/gateway.md lists the keys). The home is bound to one lake (`stedi gateway init`); a different --lake is refused unless --rebind.

    The first Ctrl-C (or SIGTERM, or the end of --duration) stops taking readings and uploads everything spooled; a second one exits at once, the spool keeping what is left. --duration bounds the run: the final upload gets drain_s (30 s) more, then the spool keeps the rest. Exit status: 0 done, 1 --duration ended before everything was uploaded, 2 bad option or another lake, 3 upload stopped on a permanent error (credentials, bucket, access), 130 stopped at once.
    """
    import asyncio

    from gateway.accel import AccelError
    from gateway.ble import BleConfigError
    from gateway.config import ConfigError, load
    from gateway.service import DRAIN_UNFINISHED, Gateway
    from gateway.spool import SpoolError
    from gateway.telemetry import TelemetryError
    from stedi.lake import LakeError

    where = _home(home)
    overrides: dict[str, Any] = {
        "ble": ble, "lake": lake, "mqtt": mqtt, "mqtt_username": mqtt_username, "mqtt_ca_file": mqtt_ca_file,
        "accel": accel, "batch_bytes": batch_bytes, "batch_age_s": batch_age, "gzip": gzip, "sse": sse,
        "kms_key_id": kms_key_id, "spool_max_readings": spool_max, "hold_unconsented": hold_unconsented,
    }
    from gateway.ble import check_available
    from gateway.uploader import classify, describe, fix_for
    from stedi.errors import PermanentError, UserError

    try:
        config = load(where, overrides)
        config.lake = _bound(where, lake or configured_lake(where), config.lake, rebind=rebind, write=True).lake
        check_available(config.ble)
        gateway = Gateway(where, config)
    except (ConfigError, AccelError, BleConfigError, SpoolError, TelemetryError, LakeError) as exc:
        _fail(f"gateway cannot start: {exc}")
        return
    except UserError:
        raise
    except Exception as exc:
        if classify(exc):  # e.g. an AWS profile that does not exist
            raise PermanentError(f"gateway cannot start: {describe(exc)}", hint=fix_for(exc)) from exc
        raise
    _warn_without_customers(gateway)
    if live:
        from rich.live import Live

        with Live(_view(gateway.snapshot()), refresh_per_second=2, transient=False) as view:
            code = asyncio.run(gateway.run(duration, on_tick=lambda g: view.update(_view(g.snapshot()))))
    else:
        code = asyncio.run(gateway.run(duration))
    if code == 3:
        raise PermanentError(gateway.error or "upload stopped", hint=gateway.error_fix)
    if code in (130, DRAIN_UNFINISHED):
        # A second signal, or --duration over with a put still failing: exit now, without
        # waiting for a put in flight (the spool keeps its batch).
        import logging
        import os
        import sys

        if code == DRAIN_UNFINISHED:
            typer.secho(f"error: {gateway.error}", fg=typer.colors.RED, err=True)
        logging.shutdown()
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(code)
    raise typer.Exit(code)


def _warn_without_customers(gateway: Any) -> None:
    """A gateway with nobody registered serves no board: say so at start, not by silence."""
    import logging

    from gateway.customers import Customers

    if not Customers(gateway.spool).all():
        logging.getLogger("gateway").warning(
            "no customer is registered in %s: no board will be served and nothing uploaded; register one "
            "with `stedi gateway register --email ... --serial BOARD-UUID` first", gateway.home)


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
        from gateway.binding import bound_lake

        bound = bound_lake(spool)
    finally:
        spool.close()
    snap = GatewayStatus.read(where) if (where / STATUS_FILE).exists() else None
    out: dict[str, Any] = {
        "home": str(where),
        "lake": bound,
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
    from gateway.status import local_time

    table = Table(title=f"gateway spool in {where}", show_header=False)
    table.add_row("bound to lake", bound or "none yet (the first command that sends to a lake binds it)")
    for key in ("spool_depth", "spool_fill", "open_batches", "held_on_device", "customer_records_waiting",
                "uploaded_readings", "uploaded_objects"):
        table.add_row(key.replace("_", " "), str(out[key]))
    table.add_row("last upload", local_time(stats.last_upload_ms))
    if snap:
        age = (time.time() * 1000 - snap.time) / 1000
        table.add_row("last run", f"{snap.phase} at {local_time(snap.time)} ({age:.0f}s ago, pid {snap.pid}), "
                                  f"lake {snap.lake}")
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


def _upload_customer_records(where: Path, lake: str, spool: Any) -> None:
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
def _customer_change(home: Path | None, lake: str | None, upload: bool, rebind: bool = False) -> Iterator[Any]:
    """The registry of customers in the gateway's home; after the change in the ``with`` block
    its landing record is uploaded to the home's lake (or left in the spool for `gateway run`).

    The lake is the one the home is bound to; naming another is refused unless ``rebind``.  The
    first command that names a lake or uploads binds the home (gateway/binding.py)."""
    from gateway.binding import bind
    from gateway.config import ConfigError, load
    from gateway.customers import CustomerError, Customers
    from gateway.spool import Spool

    where = _home(home)
    try:
        fallback = load(where).lake
    except ConfigError as exc:
        _fail(str(exc))
        return
    spool = Spool(where)
    try:
        # Checked before the change, so that a refused lake changes nothing.
        binding = bind(spool, lake or configured_lake(where), fallback, rebind=rebind,
                       write=upload or lake is not None)
        if binding.changed and binding.previous is not None:
            typer.secho(f"gateway home re-bound from {binding.previous} to {binding.lake}; {binding.requeued} "
                        "customer records queued for the new lake", fg=typer.colors.YELLOW, err=True)
        yield Customers(spool)
        if upload:
            _upload_customer_records(where, binding.lake, spool)
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
    lake: Annotated[str | None, typer.Option("--lake", help=CUSTOMER_LAKE_HELP)] = None,
    upload: Annotated[bool, typer.Option("--upload/--no-upload", help="Upload now, or leave it to `gateway run`.")] = True,
    rebind: Annotated[bool, typer.Option("--rebind", help=REBIND_HELP)] = False,
) -> None:
    """Register a customer and their step trainer (writes a customer landing record).

    The serial is the board's UUID (as `stedi firmware flash --serial` took it), the birthday a past date YYYY-MM-DD. Registering an email again updates that customer and says what changed.
    """
    from gateway.customers import CustomerError, check_birthday, check_serial, differences

    try:
        serial = check_serial(serial)
        check_birthday(birthday)
    except CustomerError as exc:
        _fail(str(exc))
    with _customer_change(home, lake, upload, rebind) as customers:
        old = customers.get(email.strip().lower())
        customer = customers.register(email=email, name=name, phone=phone, birthday=birthday, serial=serial)
        if old is None:
            typer.echo(f"registered {customer.email} with board {customer.serial}")
        else:
            changed = differences(old, customer)
            typer.echo(f"updated {customer.email} (already registered): "
                       + ("; ".join(changed) if changed else "nothing changed"))


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
    lake: Annotated[str | None, typer.Option("--lake", help=CUSTOMER_LAKE_HELP)] = None,
    upload: Annotated[bool, typer.Option("--upload/--no-upload", help="Upload now, or leave it to `gateway run`.")] = True,
    rebind: Annotated[bool, typer.Option("--rebind", help=REBIND_HELP)] = False,
) -> None:
    """Grant or withdraw a consent (writes a customer landing record with the consent dates)."""
    from gateway.status import local_time

    with _customer_change(home, lake, upload, rebind) as customers:
        c = customers.consent(email, action.value, scope.value)  # type: ignore[arg-type]
        since = ", ".join(f"{name} since {local_time(value)}" if value else f"{name} no"
                          for name, value in (("research", c.research), ("public", c.public),
                                              ("friends", c.friends)))
        typer.echo(f"{action.value} {scope.value} for {c.email}: {since}")


@app.command()
def init(
    lake: Annotated[str, typer.Option("--lake", help="The lake this home sends to: a folder or s3://bucket/prefix.")],
    home: Annotated[Path | None, typer.Option("--home", help=HOME_HELP)] = None,
    rebind: Annotated[bool, typer.Option("--rebind", help=REBIND_HELP)] = False,
) -> None:
    """Bind this gateway home to a lake: register, consent and run then send everything there.

    Without --rebind, a home already bound to another lake is refused. With it, the home moves: every registered customer's record is queued for the new lake (readings still in the spool go there too; what the old lake holds stays there).
    """
    from gateway.spool import Spool

    where = _home(home)
    binding = _bound(where, lake, lake, rebind=rebind, write=True)
    if binding.changed and binding.previous is None:
        typer.echo(f"gateway home {where} bound to lake {binding.lake}")
    elif not binding.changed:
        typer.echo(f"gateway home {where} is already bound to lake {binding.lake}")
    if binding.requeued:
        spool = Spool(where)
        try:
            _upload_customer_records(where, binding.lake, spool)
        finally:
            spool.close()


@app.command()
def customers(
    home: Annotated[Path | None, typer.Option("--home", help=HOME_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (times in epoch ms) instead of a table.")] = False,
    remove: Annotated[str | None, typer.Option("--remove", help="Forget this customer (by email) on this gateway.")] = None,
) -> None:
    """List the customers registered on this gateway, or remove one (--remove EMAIL).

    Removing stops serving their board here; what already reached the lake stays there until `stedi pipeline erase --email EMAIL` removes it.
    """
    from gateway.binding import bound_lake
    from gateway.customers import CustomerError, Customers
    from gateway.spool import SPOOL_FILE, Spool
    from gateway.status import local_time

    where = _home(home)
    if not (where / SPOOL_FILE).exists():
        _fail(f"no gateway in {where}: register a customer first (`stedi gateway register`)")
    spool = Spool(where)
    try:
        people = Customers(spool)
        lake = bound_lake(spool)
        if remove is not None:
            try:
                gone = people.remove(remove)
            except CustomerError as exc:
                _fail(str(exc))
                return
            typer.echo(f"removed {gone.email} (board {gone.serial}) from this gateway; its board is no longer "
                       "served here")
            typer.echo(f"what already reached the lake stays there: `stedi pipeline erase --email {gone.email}"
                       + (f" --lake {lake}`" if lake else "`") + " removes it")
            return
        everyone = people.all()
    finally:
        spool.close()
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(c) for c in everyone], indent=1))
        return
    if not everyone:
        typer.echo(f"no customer registered in {where} (`stedi gateway register` adds one)")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"customers of the gateway in {where}" + (f" (lake {lake})" if lake else ""))
    for col in ("email", "name", "board serial", "birthday", "registered", "research consent since",
                "public", "friends"):
        table.add_column(col, overflow="fold")
    for c in everyone:
        table.add_row(c.email, c.name, c.serial, c.birthday, local_time(c.registration),
                      local_time(c.research) if c.research else "no",
                      local_time(c.public) if c.public else "no", local_time(c.friends) if c.friends else "no")
    Console(width=max(160, Console().width)).print(table)
