"""Done-when: a simulated board (real firmware, virtual radio) through the bleak backend, the
moto S3 server and mosquitto.  Readings land as step_trainer records, each with an
accelerometer record at the same timestamp for the same customer, and a customer record
with the consent dates; telemetry reaches the broker."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from gateway.status import GatewayStatus
from gateway.uploader import open_gateway_lake
from simulator import physics
from stedi.contract import CUSTOMER_LANDING, STEP_TRAINER_LANDING
from tests.gateway.simboard import SimRig, gateway_env, stedi, write_config
from tests.gateway.util import landing_lines
from tests.parts import REPO

EMAIL = "ann@example.com"
SECOND = "9b1d2c3e-4f50-4a6b-8c7d-0e1f2a3b4c5d"
STRANGER = "00000000-dead-4bee-8f00-123456789abc"


@pytest.mark.slow
def test_board_to_landing_through_bleak_with_s3_and_mqtt(
    sim_rig: SimRig, s3_bucket: str, mqtt_broker: tuple[str, int], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    lake_url = f"s3://{s3_bucket}/lake"
    write_config(home, scan_s=1.0, batch_age_s=2.0, status_s=1.0, accel="sim", gzip=True)
    env = gateway_env(STEDI_HOME=str(home))
    sim_rig.add_board(SECOND)  # a second customer's board, served at the same time
    sim_rig.add_board(STRANGER)  # a board of nobody registered: not served
    for args in (
        ["register", "--email", EMAIL, "--name", "Ann Example", "--phone", "555-0100", "--birthday", "1991-02-03",
         "--serial", sim_rig.serial, "--lake", lake_url],
        ["consent", "grant", "research", "--email", EMAIL, "--lake", lake_url],
        ["register", "--email", "bo@example.com", "--name", "Bo", "--phone", "555-0101", "--birthday", "1985-06-07",
         "--serial", SECOND, "--lake", lake_url],
    ):
        done = stedi("gateway", *args, env=env)
        assert done.returncode == 0, done.stderr

    host, port = mqtt_broker
    messages: queue.Queue[tuple[str, dict[str, object]]] = queue.Queue()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda c, u, m: messages.put((m.topic, json.loads(m.payload)))
    sub.connect(host, port)
    sub.subscribe("stedi/#", qos=1)
    sub.loop_start()
    try:
        run = stedi("gateway", "run", "--ble", sim_rig.radio_url, "--lake", lake_url, "--mqtt",
                    f"mqtt://{host}:{port}", "--duration", "10", "--no-live", env=env, timeout=120)
        assert run.returncode == 0, run.stderr[-3000:]
    finally:
        sub.loop_stop()
        sub.disconnect()

    lake = open_gateway_lake(lake_url)
    steps = landing_lines(lake, "step_trainer")
    accel = landing_lines(lake, "accelerometer")
    customers = landing_lines(lake, "customer")
    assert {r["serialNumber"] for r in steps} == {sim_rig.serial, SECOND}  # the stranger's board is not served
    assert all(tuple(r) == STEP_TRAINER_LANDING.field_names for r in steps)
    by_time = {(a["user"], a["timestamp"]): a for a in accel}
    assert len(accel) == len(steps)
    for serial, email in ((sim_rig.serial, EMAIL), (SECOND, "bo@example.com")):
        mine = [r for r in steps if r["serialNumber"] == serial]
        assert len(mine) >= 40, run.stderr[-3000:]  # ~20 Hz for several seconds
        seqs = sorted(r["seq"] for r in mine)
        assert seqs == list(range(len(seqs)))  # from the board's first reading, none lost, none twice
        seed = physics.seed_for_serial(serial)
        for r in mine:
            a = by_time[(email, r["sensorReadingTime"])]  # the same customer, the same timestamp
            assert (a["x"], a["y"], a["z"]) == physics.accel_g(seed, r["sensorReadingTime"])
    ann = [c for c in customers if c["email"] == EMAIL]
    latest = max(ann, key=lambda c: c["lastUpdateDate"])
    assert tuple(latest) == CUSTOMER_LANDING.field_names
    assert latest["serialNumber"] == sim_rig.serial and latest["shareWithResearchAsOfDate"] is not None
    assert latest["shareWithPublicAsOfDate"] is None and len(ann) == 2
    assert "belongs to no registered customer" in run.stderr

    topics: dict[str, list[dict[str, object]]] = {}
    while not messages.empty():
        topic, payload = messages.get()
        topics.setdefault(topic, []).append(payload)
    published = [row for m in topics[f"stedi/{sim_rig.serial}/readings"] for row in m["readings"]]  # type: ignore[union-attr]
    ann_seqs = {r["seq"] for r in steps if r["serialNumber"] == sim_rig.serial}
    assert {row[0] for row in published} <= ann_seqs and len(published) >= len(ann_seqs) // 2
    status = topics[f"stedi/{sim_rig.serial}/status"][-1]
    assert status["battery"] is not None and "spoolDepth" in status and "clockOffsetMs" in status
    assert "running" not in run.stdout  # --no-live: no status table
    assert "s3cret" not in run.stderr


@pytest.mark.slow
def test_lossy_radio_with_dropped_links_loses_and_duplicates_nothing(sim_rig: SimRig, tmp_path: Path) -> None:
    """Lost notifications and acknowledgements make gaps (asked for again with RESUME) and
    repeats (dropped); dropped links are reconnected.  Landing still holds every reading once."""
    home, lake = tmp_path / "home", tmp_path / "lake"
    write_config(home, scan_s=0.5, batch_age_s=2.0, accel="sim")
    env = gateway_env(STEDI_HOME=str(home))
    reg = stedi("gateway", "register", "--email", EMAIL, "--name", "Ann", "--phone", "1", "--birthday",
                "1991-02-03", "--serial", sim_rig.serial, "--lake", str(lake), env=env)
    assert reg.returncode == 0, reg.stderr
    sim_rig.radio.set_faults(loss=0.2, disconnect_per_s=0.1)
    log = tmp_path / "gateway.log"
    with log.open("wb") as err:
        gw = subprocess.Popen(
            [sys.executable, "-m", "stedi_app.cli", "gateway", "run", "--ble", sim_rig.radio_url, "--lake", str(lake),
             "--duration", "14", "--no-live"], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 30
            while not _streaming(home, gw.pid):
                assert time.monotonic() < deadline and gw.poll() is None, log.read_text()[-3000:]
                time.sleep(0.1)
            sim_rig.radio.drop_links()  # and at least one link drop for certain
            assert gw.wait(120) == 0, log.read_text()[-3000:]
        finally:
            if gw.poll() is None:
                gw.kill()
                gw.wait()
    seqs = sorted(r["seq"] for r in landing_lines(open_gateway_lake(str(lake)), "step_trainer"))
    assert len(seqs) >= 60, log.read_text()[-3000:]
    assert seqs == list(range(len(seqs)))
    stats = sim_rig.radio.status()["stats"]
    assert stats["lost"] > 0, stats  # the faults really happened
    (board,) = GatewayStatus.read(home).boards
    assert board.connects >= 2 and board.resumes >= 1, board  # reconnected and resumed


def _streaming(home: Path, pid: int) -> bool:
    try:
        status = GatewayStatus.read(home)
    except (OSError, ValueError):  # not written yet
        return False
    return status.pid == pid and status.readings > 0
