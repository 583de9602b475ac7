"""`stedi firmware build/flash/info`: mpy-cross output, the .mpy compatibility check, argument
handling, and flash + info with the real mpremote against a virtual board (socket://)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from firmware.build import BuildResult, FirmwareError, MpyVersion, check_compatible, mpy_cross_version
from firmware.cli import app
from firmware.deploy import flash, info, make_config
from tests.parts import MicroPython

SERIAL = "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab"
runner = CliRunner()


def test_build_command(tmp_path: Path) -> None:
    out = tmp_path / "fw"
    result = runner.invoke(app, ["build", "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert {"boot.py", "main.py", "config.json", "app.mpy", "stedi_protocol.mpy", "sensors/vl53l0x.mpy"} <= set(names)
    assert not any(n.endswith(".py") and n not in ("boot.py", "main.py") for n in names), names
    assert "__init__.py" not in names and "__init__.mpy" not in names, "the CPython package marker is not flashed"
    ver = mpy_cross_version()
    header = (out / "stedi_protocol.mpy").read_bytes()[:4]
    assert header[0:1] == b"M" and header[1] == ver.version
    assert f"mpy {ver}" in result.output


def test_mpy_compatibility_check() -> None:
    assert MpyVersion.from_board(2822) == MpyVersion(6, 3)  # the unix port here: v6.3, arch x64
    check_compatible(2822, MpyVersion(6, 3))
    check_compatible(6 | (3 << 8) | (10 << 10), MpyVersion(6, 3))  # another architecture, same bytecode
    with pytest.raises(FirmwareError, match=r"incompatible \.mpy.*mpy v6\.2.*mpy v6\.3"):
        check_compatible(6 | (2 << 8), MpyVersion(6, 3))
    with pytest.raises(FirmwareError, match="incompatible"):
        check_compatible(5, MpyVersion(6, 3))
    with pytest.raises(FirmwareError, match="cannot load .mpy"):
        check_compatible(None, MpyVersion(6, 3))


def test_make_config_checks_arguments() -> None:
    cfg = make_config({"sensor": "sim", "rate_hz": 20}, SERIAL.upper(), "vl53l0x", 30, 1000)
    assert cfg == {"serial": SERIAL, "sensor": "vl53l0x", "rate_hz": 30, "buffer_readings": 1000}
    # a VL53L0X measures once per 33 ms timing budget, an HC-SR04's echo lasts up to 38 ms
    with pytest.raises(FirmwareError, match="rate_hz must be an integer 1..30 for a vl53l0x, not 50"):
        make_config({}, SERIAL, "vl53l0x", 50)
    with pytest.raises(FirmwareError, match="rate_hz must be an integer 1..20 for a hcsr04, not 25"):
        make_config({}, SERIAL, "hcsr04", 25)
    assert make_config({}, SERIAL, "sim", 50)["rate_hz"] == 50
    with pytest.raises(FirmwareError, match="UUID"):
        make_config({}, "board-7", None, None)
    with pytest.raises(FirmwareError, match="hcsr04, vl53l0x, sim"):
        make_config({}, SERIAL, "lidar", None)
    with pytest.raises(FirmwareError, match="1..50"):
        make_config({}, SERIAL, None, 60)


def test_make_config_checks_the_boards_pins_and_watchdog() -> None:
    # the board's own wiring when no pins are given: what the firmware fills in at boot
    cfg = make_config({"sensor": "sim"}, SERIAL, "vl53l0x", None, board="picow")
    assert cfg == {"serial": SERIAL, "sensor": "vl53l0x", "board": "picow"}
    cfg = make_config({}, SERIAL, "vl53l0x", None, board="picow", settings=["i2c_bus=1", "pins.scl=3", "pins.sda=2",
                                                                             "watchdog_ms=8388"])
    assert cfg["pins"] == {"scl": 3, "sda": 2} and cfg["i2c_bus"] == 1 and cfg["watchdog_ms"] == 8388
    # ESP32 wiring on a Pico W: refused with rp2's rule and its error text
    with pytest.raises(FirmwareError, match=r"scl=22 \(board picow\): bad SCL pin \(rp2: I2C0 SCL must be an odd "
                                            r"GPIO with bit 1 = 0: 1, 5, 9, 13, 17, 21; ports/rp2/machine_i2c.h\)"):
        make_config({}, SERIAL, "vl53l0x", None, board="picow", settings=["pins.scl=22", "pins.sda=21"])
    with pytest.raises(FirmwareError, match=r"sda=6 \(board picow\): bad SDA pin \(rp2: I2C0 SDA"):
        make_config({}, SERIAL, "vl53l0x", None, board="picow", settings=["pins.sda=6"])
    with pytest.raises(FirmwareError, match=r"up to 8388 \(board picow\).*timeout exceeds 8388"):
        make_config({}, SERIAL, None, None, board="picow", settings=["watchdog_ms=60000"])
    assert make_config({}, SERIAL, None, None, board="esp32", settings=["watchdog_ms=60000"])["watchdog_ms"] == 60000
    with pytest.raises(FirmwareError, match=r"trigger=34 \(board esp32\): pin can only be input"):
        make_config({}, SERIAL, "hcsr04", None, board="esp32", settings=["pins.trigger=34"])
    with pytest.raises(FirmwareError, match=r"battery_adc_pin=29 \(board picow\)"):
        make_config({}, SERIAL, None, None, board="picow", settings=["battery_adc_pin=29"])
    with pytest.raises(FirmwareError, match="--board must be one of esp32, picow"):
        make_config({}, SERIAL, None, None, board="nrf52")
    with pytest.raises(FirmwareError, match="not a setting of the firmware"):
        make_config({}, SERIAL, None, None, settings=["wifi=on"])
    with pytest.raises(FirmwareError, match="KEY=VALUE"):
        make_config({}, SERIAL, None, None, settings=["watchdog_ms"])
    assert make_config({}, SERIAL, None, None, settings=["model=ST-2"])["model"] == "ST-2"  # not JSON: a string


@pytest.mark.parametrize(
    "args, message",
    [
        (["--serial", "not-a-uuid"], "UUID"),
        (["--serial", SERIAL, "--sensor", "lidar"], "--sensor must be one of"),
        (["--serial", SERIAL, "--rate", "80"], "less than or equal to 50"),
        (["--serial", SERIAL, "--board", "picow", "--sensor", "vl53l0x", "-c", "pins.scl=22"], "bad SCL pin (rp2:"),
        (["--serial", SERIAL, "--board", "picow", "--config", "watchdog_ms=9000"], "timeout exceeds 8388"),
    ],
)
def test_flash_rejects_bad_arguments_before_touching_the_port(args: list[str], message: str) -> None:
    # port 9 (discard) on loopback: nothing must try to talk to it
    result = runner.invoke(app, ["flash", "--port", "socket://127.0.0.1:9", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_unreachable_port_is_a_clear_error() -> None:
    result = runner.invoke(app, ["info", "--port", "socket://127.0.0.1:9"])
    assert result.exit_code == 2 and "nothing answers at socket://127.0.0.1:9" in result.output


@pytest.fixture
def virtual_board(micropython: MicroPython, tmp_path: Path) -> Iterator[object]:
    server = pytest.importorskip("simulator.board.server")
    board = server.VirtualBoard(tmp_path / "flash", micropython=micropython.binary).start()
    try:
        yield board
    finally:
        board.stop()


def _wait_main(board: object, resets: int) -> None:
    deadline = time.monotonic() + 20
    while not (board.resets["hard"] >= resets and board.state == "main.py"):  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, board.last_error  # type: ignore[attr-defined]
        time.sleep(0.05)


def test_flash_and_info_on_a_virtual_board(virtual_board: object, tmp_path: Path) -> None:
    url = virtual_board.url  # type: ignore[attr-defined]
    flash_dir = Path(virtual_board.flash)  # type: ignore[attr-defined]
    result = runner.invoke(app, ["flash", "--port", url, "--serial", SERIAL, "--sensor", "sim", "--rate", "25"])
    assert result.exit_code == 0, result.output
    assert "15 copied, 0 up to date" in result.output
    config = json.loads((flash_dir / "config.json").read_text())
    assert (config["serial"], config["sensor"], config["rate_hz"]) == (SERIAL, "sim", 25)
    assert (flash_dir / "sensors" / "hcsr04.mpy").exists() and (flash_dir / "app.mpy").exists()
    _wait_main(virtual_board, 2)
    time.sleep(1.0)
    assert virtual_board.state == "main.py", virtual_board.last_error  # type: ignore[attr-defined]

    # a leftover source module would shadow its .mpy: flash removes it; unchanged files are skipped
    (flash_dir / "app.py").write_text("raise RuntimeError('stale')\n")
    result = runner.invoke(app, ["flash", "--port", url, "--serial", SERIAL, "--rate", "10"])
    assert result.exit_code == 0, result.output
    assert "1 copied, 14 up to date" in result.output and "copied config.json" in result.output
    assert not (flash_dir / "app.py").exists()
    assert json.loads((flash_dir / "config.json").read_text())["rate_hz"] == 10

    data = info(url)
    assert data["firmware"] == "1.0.0" and data["config"]["serial"] == SERIAL and data["mpy"] == 2822
    assert data["mem_free"] > 16 * 1024
    result = runner.invoke(app, ["info", "--port", url, "--reset"])
    assert result.exit_code == 0 and "1.0.0" in result.output and SERIAL in result.output


def test_flash_refuses_an_incompatible_board_before_copying(virtual_board: object, tmp_path: Path,
                                                             built_firmware: BuildResult) -> None:
    flash_dir = Path(virtual_board.flash)  # type: ignore[attr-defined]
    before = sorted(p.name for p in flash_dir.iterdir())
    other = BuildResult(out=built_firmware.out, mpy=MpyVersion(6, 1), compiled=built_firmware.compiled,
                        copied=built_firmware.copied)
    with pytest.raises(FirmwareError, match=r"incompatible \.mpy: the board loads mpy v6\.3.*v6\.1"):
        flash(virtual_board.url, other, make_config({}, SERIAL, "sim", 20))  # type: ignore[attr-defined]
    assert sorted(p.name for p in flash_dir.iterdir()) == before, "nothing copied"


def test_flash_for_a_pico_w_on_a_virtual_pico_w(micropython: MicroPython, tmp_path: Path) -> None:
    server = pytest.importorskip("simulator.board.server")
    board = server.VirtualBoard(tmp_path / "flash", micropython=micropython.binary, profile="picow").start()
    try:
        url = board.url
        # ESP32 wiring forced onto a Pico W (the config says esp32; a virtual board's unix port
        # has no sys.platform to give it away): the firmware fails at boot with rp2's own error
        result = runner.invoke(app, ["flash", "--port", url, "--serial", SERIAL, "--board", "esp32",
                                     "--sensor", "vl53l0x"])
        assert result.exit_code == 0, result.output
        deadline = time.monotonic() + 20
        while not (board.resets["hard"] >= 2 and board.state == "repl"):
            assert time.monotonic() < deadline, (board.state, board.last_error)
            time.sleep(0.05)
        assert b"ValueError: bad SCL pin" in board.last_error, board.last_error
        # what `--board picow` writes boots and keeps running
        result = runner.invoke(app, ["flash", "--port", url, "--serial", SERIAL, "--board", "picow",
                                     "--sensor", "vl53l0x"])
        assert result.exit_code == 0, result.output
        assert "board picow, sensor vl53l0x" in result.output
        config = json.loads((Path(board.flash) / "config.json").read_text())
        assert (config["board"], config["sensor"]) == ("picow", "vl53l0x") and "pins" not in config
        _wait_main(board, 3)
        time.sleep(1.0)
        assert board.state == "main.py", board.last_error
    finally:
        board.stop()
