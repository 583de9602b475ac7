"""Starting the real parts the tests run against: MicroPython, moto's S3 server, mosquitto.

Used by the fixtures in ``conftest.py`` and by benchmarks.  Every server binds a free
port on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from stedi.local_servers import LocalServer, free_port, start_moto, wait_for_port
from stedi.tools import find_tool

__all__ = ["LocalServer", "free_port", "start_moto", "wait_for_port"]  # for the tests that import them from here

REPO = Path(__file__).resolve().parent.parent


def missing_part(what: str) -> None:
    """A real part is not available: an error under CI, a skip on a developer's machine."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required in CI (run scripts/setup.sh)", pytrace=False)
    pytest.skip(f"{what} is not available")


def micropython_binary() -> str | None:
    return find_tool("micropython")


@dataclass
class MicroPython:
    """Runs code under the MicroPython unix port with a heap cap and shim folders on MICROPYPATH."""

    binary: str
    heap: str = "96k"

    def run(
        self,
        code: str | None = None,
        *,
        script: Path | None = None,
        path: Sequence[Path | str] = (),
        cwd: Path | str | None = None,
        timeout: float = 60.0,
        heap: str | None = None,
        check: bool = True,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory() as tmp:
            if script is None:
                script = Path(tmp) / "main_under_test.py"
                script.write_text(code or "")
            environ = dict(os.environ, **(env or {}))
            # ".frozen" keeps the port's frozen modules (asyncio) importable after MICROPYPATH replaces the path.
            environ["MICROPYPATH"] = os.pathsep.join([*(str(p) for p in path), ".frozen"])
            proc = subprocess.run(
                [self.binary, "-X", f"heapsize={heap or self.heap}", str(script)],
                cwd=cwd,
                env=environ,
                input=stdin.decode() if stdin is not None else None,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"MicroPython exited with {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            )
        return proc


AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


def start_mosquitto(binary: str, workdir: Path) -> LocalServer:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    # No pid_file: as root mosquitto drops to the mosquitto user and could not write it.
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    return LocalServer([binary, "-c", str(conf)], port, log=workdir / "mosquitto.log")


def chromium_binary() -> str | None:
    """Debian's ``chromium`` (scripts/setup.sh installs it as root), or another Chromium on PATH."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(binary: str, page: Path, png: Path, size: tuple[int, int] = (1280, 2400), timeout: float = 60.0) -> None:
    """Render ``page`` in headless Chromium into ``png``: no network use, a throw-away profile."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        argv = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={size[0]},{size[1]}",
                page.resolve().as_uri()]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not png.is_file():
        raise AssertionError(f"chromium exited with {proc.returncode} and no screenshot:\n{proc.stderr[-2000:]}")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of a headless-capable Chromium (Debian package ``chromium``)."""
    binary = chromium_binary()
    if binary is None:
        missing_part("chromium (apt-get install chromium)")
    assert binary is not None
    return binary


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``stedi <argv>`` through the console script's own entry point, in this process (the tests'
    Spark session is borrowed): (exit code, stdout, stderr); a traceback on stderr fails the test."""
    from stedi_app import cli

    monkeypatch.setattr(sys, "argv", ["stedi", *argv])
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err
