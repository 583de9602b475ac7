"""Done-when: SIGKILL the gateway mid-stream and mid-upload, restart it, and nothing is lost
or duplicated in landing (checked by the board's sequence numbers).

The board (real firmware on a virtual board) lives in the test process and keeps its
buffer while the gateway process dies.  Uploads go to moto's S3 server through a proxy
that holds each request a moment, so a kill can be aimed at an upload in flight."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from gateway.status import GatewayStatus
from gateway.uploader import open_gateway_lake
from tests.gateway.proxy import TcpProxy
from tests.gateway.simboard import SimRig, gateway_env, stedi, write_config
from tests.gateway.util import landing_lines
from tests.parts import REPO

EMAIL = "kim@example.com"


def _start(env: dict[str, str], radio: str, lake: str, log: Path, duration: float | None = None) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "stedi_app.cli", "gateway", "run", "--ble", radio, "--lake", lake, "--no-live"]
    if duration is not None:
        argv += ["--duration", str(duration)]
    return subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log.open("ab"))


def _spooled(home: Path) -> int:
    try:
        return GatewayStatus.read(home).readings
    except (OSError, ValueError):  # not written yet
        return 0


def _connected(home: Path, pid: int) -> bool:
    try:
        status = GatewayStatus.read(home)
    except (OSError, ValueError):  # not written yet
        return False
    return status.pid == pid and any(b.connected and b.readings > 0 for b in status.boards)


def _wait(what: str, cond: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_mid_stream_and_mid_upload_loses_and_duplicates_nothing(
    sim_rig: SimRig, s3_server: str, s3_bucket: str, tmp_path: Path
) -> None:
    proxy = TcpProxy(int(s3_server.rsplit(":", 1)[1]))
    home = tmp_path / "home"
    log = tmp_path / "gateway.log"
    lake_url = f"s3://{s3_bucket}/lake"
    write_config(home, scan_s=0.5, batch_age_s=1.0, accel="sim", status_s=1.0)
    env = gateway_env(STEDI_HOME=str(home), AWS_ENDPOINT_URL=proxy.url)
    reg = stedi("gateway", "register", "--email", EMAIL, "--name", "Kim", "--phone", "1", "--birthday",
                "1970-01-01", "--serial", sim_rig.serial, "--no-upload", env=env)
    assert reg.returncode == 0, reg.stderr
    kills = []
    try:
        # 1. Mid-stream: readings are arriving and being committed when the gateway dies.
        gw = _start(env, sim_rig.radio_url, lake_url, log)
        _wait("readings in the spool", lambda: _spooled(home) >= 40)
        gw.send_signal(signal.SIGKILL)
        gw.wait(10)
        kills.append("mid-stream")

        # 2. Mid-upload: a PUT is on its way to S3 (held by the slow proxy) when the gateway dies.
        proxy.delay_s = 0.4
        for _ in range(2):
            gw = _start(env, sim_rig.radio_url, lake_url, log)
            _wait("the board streaming again", lambda pid=gw.pid: _connected(home, pid), 30)
            proxy.put_seen.clear()
            assert proxy.put_seen.wait(30), log.read_text()[-3000:]
            time.sleep(0.1)
            gw.send_signal(signal.SIGKILL)
            gw.wait(10)
            kills.append("mid-upload")
        proxy.delay_s = 0.0

        # 3. A last run that ends on SIGTERM: stop taking readings, upload everything, exit.
        gw = _start(env, sim_rig.radio_url, lake_url, log)
        _wait("the board streaming again", lambda pid=gw.pid: _connected(home, pid), 30)
        time.sleep(2.5)
        gw.send_signal(signal.SIGTERM)
        assert gw.wait(90) == 0, log.read_text()[-3000:]
        lake = open_gateway_lake(lake_url)
        steps = landing_lines(lake, "step_trainer")
        accel = landing_lines(lake, "accelerometer")
        keys = [o.key for o in lake.list("step_trainer/landing/")]
    finally:
        proxy.close()

    assert kills == ["mid-stream", "mid-upload", "mid-upload"]
    boots = {r["bootId"] for r in steps}
    assert len(boots) == 1  # the board kept running: one boot
    seqs = Counter(r["seq"] for r in steps)
    assert max(seqs.values()) == 1, [s for s, n in seqs.items() if n > 1][:10]  # nothing twice
    assert sorted(seqs) == list(range(len(seqs)))  # nothing lost, from the first reading on
    assert len(seqs) >= 100
    assert Counter((a["user"], a["timestamp"]) for a in accel) == Counter((EMAIL, r["sensorReadingTime"]) for r in steps)
    # Batch objects never overlap: their sequence ranges are disjoint.
    ranges = sorted(tuple(int(x) for x in k.rsplit("/", 1)[1].split(".")[0].split("-")) for k in keys)
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    status = stedi("gateway", "status", "--json", env=env)
    assert json.loads(status.stdout)["spool_depth"] == 0
