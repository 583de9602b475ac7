"""Independent check of the board's BLE side (issue 17, item 4).

The real firmware runs on a virtual board; the central is a plain bumble host on the hub's port
(bumble's own ``tcp-client:`` transport, no project code on the central side), and the frames
are decoded by a decoder written here from docs/ble-protocol.md, not by firmware/board's
stedi_protocol.  So whatever the firmware or our shims get wrong about advertising, ATT, the MTU
exchange, CCCDs or the frame format shows up here, against bumble's host stack.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from pathlib import Path

import pytest
from bumble import hci
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Device, Peer
from bumble.transport import open_transport

from simulator.board.server import VirtualBoard
from simulator.radio.server import RadioThread
from simulator.shims import compiled_shims
from tests.parts import REPO, MicroPython
from tests.simulator.board.mp import mpremote
from tests.simulator.radio.test_done_real_firmware import _flash_args

FIRMWARE = REPO / "firmware" / "board"
SERIAL = "5e7d0c3f-0000-4000-8000-00000000c0de"

# docs/ble-protocol.md, "GATT table" and "Advertising"
STEDI_SERVICE = UUID("57ed1000-5e7d-4b1a-9f3e-2c4d6a8b0e10")
READINGS = UUID("57ed1001-5e7d-4b1a-9f3e-2c4d6a8b0e10")
CONTROL = UUID("57ed1002-5e7d-4b1a-9f3e-2c4d6a8b0e10")
STATUS = UUID("57ed1003-5e7d-4b1a-9f3e-2c4d6a8b0e10")
DEVICE_INFORMATION, SERIAL_NUMBER, BATTERY, BATTERY_LEVEL = UUID(0x180A), UUID(0x2A25), UUID(0x180F), UUID(0x2A19)
CCCD = UUID(0x2902)


def crc16_ccitt_false(data: bytes) -> int:
    """docs/ble-protocol.md: poly 0x1021, init 0xFFFF, no reflection, no final XOR."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def decode_frame(frame: bytes) -> tuple[int, list[tuple[int, int, int]]]:
    """A batch frame per docs/ble-protocol.md -> (boot_id, [(seq, epoch_ms, mm)])."""
    assert len(frame) >= 17, f"short frame: {frame.hex()}"
    version, flags, boot_id, first_seq, lo, hi, count = struct.unpack_from("<BBHIIHB", frame, 0)
    assert version == 1 and flags == 0x01 and count >= 1, frame.hex()
    assert len(frame) == 17 + 3 * count, f"length {len(frame)} for {count} readings"
    (crc,) = struct.unpack_from("<H", frame, 15 + 3 * count)
    assert crc == crc16_ccitt_false(frame[: 15 + 3 * count]), "bad CRC"
    t = lo | hi << 32
    rows = []
    for i in range(count):
        delta, mm = struct.unpack_from("<BH", frame, 15 + 3 * i)
        t += delta
        rows.append(((first_seq + i) & 0xFFFFFFFF, t, mm))
    return boot_id, rows


def test_crc_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1  # the check value the doc gives


async def plain_bumble_central(port: int) -> dict[str, object]:
    """Everything a gateway does, in bumble's own API only."""
    async with await open_transport(f"tcp-client:127.0.0.1:{port}") as (source, sink):
        central = Device.with_hci("conformance", hci.Address("F0:0D:00:00:00:01"), source, sink)
        await central.power_on()
        found: asyncio.Future[Advertisement] = asyncio.get_running_loop().create_future()

        def on_advertisement(adv: Advertisement) -> None:
            uuids = adv.data.get(AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS) or []
            if STEDI_SERVICE in uuids and not found.done():
                found.set_result(adv)

        central.on("advertisement", on_advertisement)
        await central.start_scanning(active=True)
        adv = await asyncio.wait_for(found, 20)
        await central.stop_scanning()

        connection = await central.connect(adv.address, timeout=10)
        peer = Peer(connection)
        mtu = await peer.request_mtu(247)
        await peer.discover_services()
        for service in peer.services:
            await service.discover_characteristics()
            for characteristic in service.characteristics:
                await characteristic.discover_descriptors()

        def char(service_uuid: UUID, char_uuid: UUID):  # type: ignore[no-untyped-def]
            (service,) = peer.get_services_by_uuid(service_uuid)
            (c,) = service.get_characteristics_by_uuid(char_uuid)
            return c

        serial = (await char(DEVICE_INFORMATION, SERIAL_NUMBER).read_value()).decode()
        battery = (await char(BATTERY, BATTERY_LEVEL).read_value())[0]
        status = await char(STEDI_SERVICE, STATUS).read_value()
        readings = char(STEDI_SERVICE, READINGS)
        cccds = [d for d in readings.descriptors if d.type == CCCD]
        frames: list[bytes] = []
        await readings.subscribe(lambda value: frames.append(bytes(value)))
        cccd_value = await cccds[0].read_value()
        # TIME_SYNC: opcode 0x01 + u64 epoch ms
        synced_at = int(time.time() * 1000)
        await char(STEDI_SERVICE, CONTROL).write_value(struct.pack("<BQ", 0x01, synced_at), with_response=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum((len(f) - 17) // 3 for f in frames) < 60:
            await asyncio.sleep(0.2)
        await connection.disconnect()
        return {"adv": adv, "mtu": mtu, "serial": serial, "battery": battery, "status": status, "frames": frames,
                "cccd": cccd_value, "cccd_count": len(cccds), "synced_at": synced_at}


@pytest.mark.slow
def test_a_plain_bumble_central_reads_the_real_firmware(micropython: MicroPython, tmp_path: Path) -> None:
    from firmware.build import build
    from firmware.deploy import make_config

    built = build(tmp_path / "build").out
    config = tmp_path / "config.json"
    config.write_text(json.dumps(make_config(json.loads((built / "config.json").read_text()), SERIAL, "vl53l0x", 20,
                                             board="esp32")))
    compiled = compiled_shims(micropython.binary, cache=tmp_path / "shim-cache")
    assert compiled is not None
    with RadioThread(seed=3) as radio, VirtualBoard(
        tmp_path / "flash", heap="96k", radio=radio.hostport, board_id="conformance-1",
        micropython=micropython.binary, extra_path=(compiled,), profile="esp32",
    ) as board:
        mpremote(board.url, *_flash_args(built, config), timeout=120)
        out = asyncio.run(plain_bumble_central(radio.port))
        assert board.state == "main.py", board.last_error

    adv = out["adv"]
    assert isinstance(adv, Advertisement)
    # Advertising: flags 0x06 and the service UUID in the advert, the name in the scan response.
    assert adv.data.get(AdvertisingData.FLAGS) == 0x06
    assert adv.data.get(AdvertisingData.COMPLETE_LOCAL_NAME) == "STEDI-c0de"
    assert adv.is_connectable
    assert out["mtu"] == 247  # the board asks for 247 (docs: MTU), so the exchange settles there
    assert out["serial"] == SERIAL
    assert 0 <= int(out["battery"]) <= 100  # type: ignore[call-overload]
    status = out["status"]
    assert isinstance(status, bytes) and len(status) == 31 and status[0] == 1
    assert out["cccd_count"] == 1 and out["cccd"] == b"\x01\x00"  # subscribed: the board's ATT server kept it
    frames = out["frames"]
    assert isinstance(frames, list) and frames
    boots = set()
    rows: list[tuple[int, int, int]] = []
    for frame in frames:
        assert len(frame) <= 247 - 3  # one notification carries at most MTU - 3 bytes
        boot_id, got = decode_frame(frame)
        boots.add(boot_id)
        rows += got
    (boot_id,) = boots
    assert boot_id == struct.unpack_from("<H", status, 2)[0]  # status and frames agree on the boot
    seqs = [seq for seq, _t, _mm in rows]
    assert seqs[0] == 0 and seqs == list(range(len(seqs))) and len(seqs) >= 60  # from boot, no gap
    times = [t for _s, t, _mm in rows]
    assert times == sorted(times) and abs(times[-1] - int(out["synced_at"])) < 30_000  # type: ignore[call-overload]
    assert all(100 <= mm <= 400 for _s, _t, mm in rows)
