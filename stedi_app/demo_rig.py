"""The hardware-free parts the demo starts: moto's S3 server, the virtual radio, virtual boards
flashed with the real firmware through the real mpremote, and a short BLE visit to each board
to stop its sampling and read its final sequence number.

Everything started here is registered on an ``ExitStack`` by the caller, so it is stopped on
the way out whatever happens (an error, Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from stedi.local_servers import ServerError, aws_environment, start_moto
from stedi_app.demo_reconcile import BoardCount

log = logging.getLogger(__name__)

DEMO_BUCKET = "stedi-demo"
#: The board's RAM, as everywhere else in the project.
BOARD_HEAP = "96k"


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and why."""


def demo_serial(seed: int, n: int) -> str:
    """Board n's serial number: a UUID fixed by the seed, so a run can be repeated.  The last four
    characters name the board over the air (``STEDI-xxxx``), so they carry the board's number."""
    digest = hashlib.sha256(f"stedi-demo:{seed}".encode()).digest()
    text = str(uuid.UUID(bytes=digest[:16], version=4))
    return text[:-4] + f"{n:04x}"


# ---- moto's S3 server ------------------------------------------------------------------


@contextlib.contextmanager
def moto_s3(work: Path) -> Iterator[str]:
    """moto's S3 server on a free loopback port with a demo bucket; yields the lake URL.

    Dummy credentials and ``AWS_ENDPOINT_URL`` are put in this process's environment (boto3
    reads them) and restored afterwards."""
    try:
        server = start_moto(work / "moto.log")
    except ServerError as exc:
        raise DemoError(f"moto's S3 server did not start: {exc} (log: {work / 'moto.log'})") from None
    log.info("moto S3 server (pid %d) on 127.0.0.1:%d", server.proc.pid, server.port)
    credentials = {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        with aws_environment(server.url, credentials):
            import boto3

            boto3.client("s3").create_bucket(Bucket=DEMO_BUCKET)
            log.info("moto S3 server ready; bucket %s created", DEMO_BUCKET)
            yield f"s3://{DEMO_BUCKET}/lake"
    finally:
        server.stop()
        log.info("moto S3 server stopped")


# ---- radio and boards --------------------------------------------------------------------

@contextlib.contextmanager
def radio(seed: int) -> Iterator[Any]:
    from simulator.radio.server import RadioThread

    thread = RadioThread(seed=seed).start()
    log.info("virtual radio on %s", thread.url)
    try:
        yield thread
    finally:
        thread.stop()
        log.info("virtual radio stopped")


@contextlib.contextmanager
def boards(work: Path, radio_hostport: str, count: int) -> Iterator[list[Any]]:
    """``count`` virtual boards on the radio, each with an empty flash, powered up."""
    from simulator.board.interpreter import micropython_binary
    from simulator.board.server import VirtualBoard
    from simulator.shims import compiled_shims

    binary = micropython_binary()
    compiled = compiled_shims(binary)  # first on the path: the shims sit compactly in the heap
    extra = (compiled,) if compiled is not None else ()
    started: list[Any] = []
    try:
        for n in range(1, count + 1):
            flash = work / f"board-{n}"
            flash.mkdir(parents=True, exist_ok=True)
            board = VirtualBoard(flash, heap=BOARD_HEAP, radio=radio_hostport, board_id=f"stedi-demo-{n}",
                                 micropython=binary, extra_path=extra)
            started.append(board.start())
            log.info("virtual board %d powered up on %s (flash %s)", n, board.url, flash)
        yield started
    finally:
        for board in started:
            with contextlib.suppress(Exception):
                board.stop()
        if started:
            log.info("%d virtual boards powered off", len(started))


def build_firmware(out: Path) -> Any:
    from firmware.build import build

    built = build(out)
    log.info("firmware built with mpy-cross into %s (%d files)", out, len(built.files))
    return built


def flash_boards(urls: list[str], serials: list[str], built: Any, rate_hz: int) -> None:
    """Flash every board with the real mpremote (``firmware.deploy.flash``, as ``stedi firmware
    flash`` does), a few at a time; each board resets into the firmware afterwards."""
    import json
    import shutil

    from firmware.build import FirmwareError
    from firmware.deploy import flash, make_config

    template = json.loads((built.out / "config.json").read_text())

    def one(i: int) -> None:
        # Each flash writes config.json into its own copy of the build: no board sees another's serial.
        own = built.out.parent / f"build-{i}"
        if own.exists():
            shutil.rmtree(own)
        shutil.copytree(built.out, own)
        mine = dataclasses.replace(built, out=own,
                                   compiled=[own / p.relative_to(built.out) for p in built.compiled],
                                   copied=[own / p.relative_to(built.out) for p in built.copied])
        config = make_config(template, serials[i], "sim", rate_hz)
        flash(urls[i], mine, config, reset=True)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for i, future in enumerate([pool.submit(one, i) for i in range(len(urls))]):
            try:
                future.result()
            except FirmwareError as exc:
                raise DemoError(f"flashing board {i + 1} ({urls[i]}) failed: {exc}") from exc


# ---- stopping the boards' sampling over BLE -----------------------------------------------

async def _stop_one(device: Any, kw: dict[str, Any], timeout: float) -> BoardCount:
    from bleak import BleakClient

    from firmware.board import stedi_protocol as proto

    async with BleakClient(device, timeout=timeout, **kw) as client:
        serial = (await client.read_gatt_char(proto.uuid16_str(proto.SERIAL_NUMBER_CHAR))).decode().strip()
        await client.write_gatt_char(proto.CONTROL_UUID, proto.encode_stop(), response=True)
        # The status value is refreshed about once a second: wait until it shows the stop.
        deadline = time.monotonic() + timeout
        while True:
            status = proto.decode_status(await client.read_gatt_char(proto.STATUS_UUID))
            if not status["sampling"]:
                break
            if time.monotonic() > deadline:
                raise DemoError(f"board {serial} still samples {timeout:.0f} s after STOP")
            await asyncio.sleep(0.2)
        # One more refresh after the stop, so next_seq is the final one.
        await asyncio.sleep(1.2)
        status = proto.decode_status(await client.read_gatt_char(proto.STATUS_UUID))
    log.info("board %s stopped sampling: boot %d, made %d readings (seq 0..%d), %d held, %d dropped",
             serial, status["boot_id"], status["next_seq"], status["next_seq"] - 1, status["fill"],
             status["dropped"])
    return BoardCount(serial, int(status["boot_id"]), int(status["next_seq"]), int(status["dropped"]))


async def stop_sampling(radio_url: str, serials: list[str], timeout: float = 30.0) -> list[BoardCount]:
    """Connect to each board (the gateway has let go of them), write the control STOP opcode and
    read the final ``next_seq`` from its status characteristic."""
    from bleak import BleakScanner

    from firmware.board import stedi_protocol as proto
    from simulator.bleak_backend import backend_kwargs

    kw = backend_kwargs(radio_url)
    wanted = {proto.device_name(s): s for s in serials}
    found: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(wanted):
        seen = await BleakScanner.discover(timeout=1.0, service_uuids=[proto.SERVICE_UUID], return_adv=True, **kw)
        for device, adv in seen.values():
            if adv.local_name in wanted:
                found[wanted[adv.local_name]] = device
        if time.monotonic() > deadline:
            missing = sorted(set(serials) - set(found))
            raise DemoError(f"boards not advertising after the gateway stopped: {', '.join(missing)}")
    counts = await asyncio.gather(*(_stop_one(found[s], kw, timeout) for s in serials))
    by_serial = {c.serial: c for c in counts}
    return [by_serial[s] for s in serials]
