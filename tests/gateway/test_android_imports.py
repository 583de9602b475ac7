"""The gateway where bleak-retry-connector cannot be imported, as under python-for-android: no
``dbus_fast``, no ``bluetooth_adapters`` (BlueZ-only), so bleak-retry-connector's import fails.
`gateway run` still connects (bleak's own connect with a bounded retry, gateway/connect.py) and
lands the board's readings, from its first one, none lost."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.uploader import open_gateway_lake
from tests.gateway.simboard import SimRig, gateway_env, stedi, write_config
from tests.gateway.util import landing_lines
from tests.parts import REPO

#: Run first in the gateway's process: these imports fail as they do on a phone; each refusal
#: and, at exit, whether any of them got in anyway, are written to stderr.
ANDROID_LIKE = '''
import atexit, importlib.abc, sys
ABSENT = ("dbus_fast", "bluetooth_adapters", "bleak_retry_connector")

class NotOnThisPhone(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            sys.stderr.write("BLOCKED " + name + "\\n")
            raise ImportError("No module named " + repr(name) + " (blocked: not on Android)", name=name)
        return None

sys.meta_path.insert(0, NotOnThisPhone())
atexit.register(lambda: sys.stderr.write("LOADED %s\\n" % sorted(m for m in sys.modules if m.split(".")[0] in ABSENT)))
sys.argv = ["stedi", *sys.argv[1:]]
from stedi_app.cli import main
main()
'''


def test_gateway_runs_without_dbus_fast_and_bleak_retry_connector(sim_rig: SimRig, tmp_path: Path) -> None:
    home = tmp_path / "home"
    lake = tmp_path / "lake"
    write_config(home, scan_s=1.0, batch_age_s=1.0, status_s=1.0, accel="sim")
    env = gateway_env(STEDI_HOME=str(home))
    for args in (["register", "--email", "ann@example.com", "--name", "Ann", "--phone", "555-0100",
                  "--birthday", "1991-02-03", "--serial", sim_rig.serial, "--lake", str(lake)],
                 ["consent", "grant", "research", "--email", "ann@example.com", "--lake", str(lake)]):
        done = stedi("gateway", *args, env=env)
        assert done.returncode == 0, done.stderr

    run = subprocess.run([sys.executable, "-c", ANDROID_LIKE, "gateway", "run", "--ble", sim_rig.radio_url,
                          "--lake", str(lake), "--duration", "6", "--no-live"],
                         env=env, text=True, capture_output=True, timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "BLOCKED bleak_retry_connector" in run.stderr, "the gateway never tried bleak-retry-connector"
    assert "LOADED []" in run.stderr, run.stderr[-2000:]
    assert "connecting with bleak's connect() and a bounded retry" in run.stderr
    seqs = sorted(r["seq"] for r in landing_lines(open_gateway_lake(str(lake)), "step_trainer"))
    assert len(seqs) >= 20, run.stderr[-3000:]  # 20 Hz for a few seconds
    assert seqs == list(range(len(seqs)))


class FlakyClient:
    """A BleakClient stand-in whose connect fails the first ``failures`` times (class-wide)."""

    failures = 0
    made: list[FlakyClient] = []

    def __init__(self, device: object, disconnected_callback: object = None, **kwargs: object) -> None:
        self.device = device
        self.kwargs = kwargs
        self.disconnects = 0
        FlakyClient.made.append(self)

    async def connect(self) -> None:
        if len(FlakyClient.made) <= FlakyClient.failures:
            raise TimeoutError("no answer from the board")

    async def disconnect(self) -> None:
        self.disconnects += 1


def test_the_fallback_connect_retries_a_bounded_number_of_times(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import connect

    monkeypatch.setattr(connect, "RETRY_PAUSE_S", (0.0,))
    FlakyClient.made, FlakyClient.failures = [], 2
    client = asyncio.run(connect.connect_with_retry(FlakyClient, "device", "board", disconnected_callback=print,
                                                    max_attempts=3, backend="x"))
    assert client is FlakyClient.made[-1] and len(FlakyClient.made) == 3 and client.kwargs == {"backend": "x"}
    assert [c.disconnects for c in FlakyClient.made] == [1, 1, 0]  # each failed attempt cleaned up

    FlakyClient.made, FlakyClient.failures = [], 10
    with pytest.raises(TimeoutError, match="no answer"):
        asyncio.run(connect.connect_with_retry(FlakyClient, "device", "board", disconnected_callback=print,
                                               max_attempts=3))
    assert len(FlakyClient.made) == 3, "three attempts, then the error goes to the caller's reconnect loop"
