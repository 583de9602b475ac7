"""`stedi firmware` on a port that is not a board ends in one message and exit 2, and `info`
leaves the firmware running (the board advertises again afterwards)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.simboard import SimRig, gateway_env, stedi

SERIAL = "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab"


@pytest.fixture
def not_a_board() -> Iterator[str]:
    """A TCP port that answers like a web server, not like MicroPython's REPL."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\nServer: not/a/board/at/all\r\n\r\n")
                time.sleep(0.5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"socket://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_info_on_a_port_that_is_not_a_board(not_a_board: str) -> None:
    run = stedi("firmware", "info", "--port", not_a_board)
    assert run.returncode == 2, run.stderr
    assert f"no MicroPython board answered on {not_a_board}" in run.stderr
    assert "Traceback" not in run.stderr and "File \"" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_flash_to_a_device_that_does_not_exist(tmp_path: Path) -> None:
    missing = str(tmp_path / "ttyUSB9")
    run = stedi("firmware", "flash", "--port", missing, "--serial", SERIAL)
    assert run.returncode == 2, run.stderr
    assert f"there is no device {missing}" in run.stderr and "may be in use" not in run.stderr
    assert "built" not in run.stderr  # refused before building


def _advertising(rig: SimRig) -> bool:
    return any(n["id"] == "trainer-1" and n["advertising"] for n in rig.radio.status()["nodes"])


def _wait(predicate: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_info_leaves_the_firmware_running(sim_rig: SimRig) -> None:
    assert _wait(lambda: _advertising(sim_rig), 20), sim_rig.board.last_error
    port = sim_rig.board.url
    run = stedi("firmware", "info", "--port", port, "--json", env=gateway_env())
    assert run.returncode == 0, run.stderr
    assert sim_rig.serial in run.stdout
    assert _wait(lambda: _advertising(sim_rig), 20), "the board did not advertise again after `firmware info`"
    # --no-reset leaves the board at its REPL: the firmware is stopped, nothing advertises
    run = stedi("firmware", "info", "--port", port, "--no-reset", env=gateway_env())
    assert run.returncode == 0, run.stderr
    assert _wait(lambda: not _advertising(sim_rig), 10)
