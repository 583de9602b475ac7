"""Credentials never appear in logs, status, help, telemetry, the spool or the lake.

The gateway runs as a process, at DEBUG level, with AWS credentials, an MQTT password and the
customer-key salt set to distinctive values: once against a virtual board (real firmware),
moto's S3 server and mosquitto, with a subscriber recording every telemetry message; once
with everything failing (S3 endpoint unreachable, the broker refusing the password).  Then
`stedi pipeline run` at DEBUG level with the salt.  Every byte they wrote or said is searched
for every secret.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from gateway.spool import SPOOL_FILE
from tests.gateway.simboard import SimRig, sim_rig, write_config  # noqa: F401 - sim_rig is a fixture
from tests.parts import REPO, LocalServer, free_port, missing_part, mosquitto_binary
from tests.security.people import fill_lake

SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAFUZZSECRETID7F3A",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-KEY-3c9e71b2d5",
    "AWS_SESSION_TOKEN": "aws-session-TOKEN-8a2f64c0",
    "STEDI_MQTT_PASSWORD": "mqtt-password-5b8e0d17",
    "STEDI_CUSTOMER_KEY_SALT": "customer-salt-c4e1a9f3",
}
URL_PASSWORD = "mqtt-url-password-91d2e6"  # given inside the --mqtt URL instead
EMAIL = "ann@example.com"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AWS_ENDPOINT_URL", None)
    env.update(SECRETS, PYTHONPATH=str(REPO), AWS_DEFAULT_REGION="us-east-1", **extra)
    return env


def _stedi(*args: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stedi_app.cli", *args], env=env, cwd=REPO, text=True,
                          capture_output=True, timeout=timeout)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_no_secret(where: dict[str, bytes | str], extra: tuple[str, ...] = ()) -> None:
    for name, blob in where.items():
        data = blob.encode() if isinstance(blob, str) else blob
        for secret in (*SECRETS.values(), *extra):
            assert secret.encode() not in data, f"{secret!r} found in {name}"


def _subscriber(port: int) -> tuple[mqtt.Client, queue.Queue[tuple[str, bytes]]]:
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: got.put((m.topic, m.payload))
    client.connect("127.0.0.1", port)
    client.subscribe("#", qos=1)
    client.loop_start()
    return client, got


@pytest.mark.slow
def test_gateway_at_debug_level_says_no_secret(
    sim_rig: SimRig, s3_server: str, s3_bucket: str, mqtt_broker: tuple[str, int], tmp_path: Path  # noqa: F811
) -> None:
    home = tmp_path / "home"
    lake = f"s3://{s3_bucket}/lake"
    write_config(home, scan_s=1.0, batch_age_s=2.0, status_s=1.0, accel="sim", mqtt_username="stedi")
    env = _env(STEDI_HOME=str(home), AWS_ENDPOINT_URL=s3_server)
    said: dict[str, bytes | str] = {}
    for args in (["register", "--email", EMAIL, "--name", "Ann", "--phone", "555-0100", "--birthday", "1991-02-03",
                  "--serial", sim_rig.serial, "--lake", lake],
                 ["consent", "grant", "research", "--email", EMAIL, "--lake", lake]):
        done = _stedi("-v", "gateway", *args, env=env)
        assert done.returncode == 0, done.stderr
        said[f"{args[0]} output"] = done.stdout + done.stderr
    sub, messages = _subscriber(mqtt_broker[1])
    try:
        run = _stedi("-v", "gateway", "run", "--ble", sim_rig.radio_url, "--lake", lake, "--mqtt",
                     f"mqtt://127.0.0.1:{mqtt_broker[1]}", "--duration", "6", "--no-live", env=env, timeout=120)
        time.sleep(0.5)
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert run.returncode == 0, run.stderr[-3000:]
    said["run output"] = run.stdout + run.stderr
    status = _stedi("gateway", "status", "--json", "--home", str(home), env=env)
    said["status"] = status.stdout + status.stderr
    for args in (["--help"], ["gateway", "run", "--help"], ["gateway", "register", "--help"],
                 ["pipeline", "run", "--help"]):
        said[" ".join(args)] = _stedi(*args, env=env).stdout
    telemetry = []
    while not messages.empty():
        topic, payload = messages.get()
        telemetry.append(topic)
        said[f"mqtt {topic} #{len(telemetry)}"] = payload
    said.update(_files(home))  # spool database (and its WAL), status.json, gateway.toml
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server)
    for obj in s3.list_objects_v2(Bucket=s3_bucket).get("Contents", []):
        said[f"s3 {obj['Key']}"] = s3.get_object(Bucket=s3_bucket, Key=obj["Key"])["Body"].read()

    # What was searched is real: debug lines were logged, telemetry and landing objects exist.
    assert " DEBUG " in str(said["run output"]), str(said["run output"])[-2000:]
    assert any(t.endswith("/readings") for t in telemetry) and any(t.endswith("/status") for t in telemetry)
    assert any(k.startswith("s3 lake/step_trainer/landing/") for k in said)
    assert str(home / SPOOL_FILE) in said and said[str(home / SPOOL_FILE)]  # the spool was searched
    assert_no_secret(said)


@pytest.fixture
def strict_broker() -> Iterator[tuple[int, Path]]:
    """A mosquitto that only lets user 'stedi' in, with another password; yields (port, its log)."""
    binary = mosquitto_binary()
    if binary is None:
        missing_part("mosquitto (apt-get install mosquitto)")
    assert binary is not None
    passwd = shutil.which("mosquitto_passwd") or str(Path(binary).with_name("mosquitto_passwd"))
    # Not under pytest's private tmp: as root, mosquitto reads the password file as its own user.
    with tempfile.TemporaryDirectory(prefix="stedi-broker-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        subprocess.run([passwd, "-b", "-c", str(work / "passwords"), "stedi", "the-right-one"], check=True)
        (work / "passwords").chmod(0o644)
        port = free_port()
        (work / "mosquitto.conf").write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {work / 'passwords'}\n"
            "persistence false\n"
        )
        server = LocalServer([binary, "-c", str(work / "mosquitto.conf")], port, log=work / "mosquitto.log")
        try:
            yield port, work / "mosquitto.log"
        finally:
            server.stop()


@pytest.mark.slow
def test_gateway_failing_everywhere_at_debug_level_says_no_secret(strict_broker: tuple[int, Path],
                                                                  tmp_path: Path) -> None:
    port, broker_log = strict_broker
    home = tmp_path / "home"
    write_config(home, scan_s=1.0, batch_age_s=1.0)
    dead_s3 = f"http://127.0.0.1:{free_port()}"  # nothing listens: every upload fails
    env = _env(STEDI_HOME=str(home), AWS_ENDPOINT_URL=dead_s3)
    del env["STEDI_MQTT_PASSWORD"]  # the URL's password is used: wrong for this broker
    said: dict[str, bytes | str] = {}
    register = _stedi("-v", "gateway", "register", "--email", EMAIL, "--name", "Ann", "--phone", "555-0100",
                      "--birthday", "1991-02-03", "--serial", "a11a0001-0000-4000-8000-00000000a11a", "--lake",
                      "s3://nowhere/lake", env=env)
    said["register output"] = register.stdout + register.stderr
    assert "kept in the spool" in said["register output"], said["register output"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "stedi_app.cli", "-v", "gateway", "run", "--ble", f"sim://127.0.0.1:{free_port()}",
         "--lake", "s3://nowhere/lake", "--mqtt", f"mqtt://stedi:{URL_PASSWORD}@127.0.0.1:{port}",
         "--accel", "sim", "--no-live"],
        env=env, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(8)  # uploads retried, scans failed, the broker refused
        proc.send_signal(signal.SIGINT)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)  # the upload cannot drain: exit at once
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    said["run output"] = out
    said.update(_files(home))
    said["broker log"] = broker_log.read_bytes()
    # The failures did happen and were logged at debug level.
    assert " DEBUG " in out and "refused the connection" in out, out[-3000:]
    assert "retry" in out, out[-3000:]
    assert_no_secret(said, extra=(URL_PASSWORD,))


@pytest.mark.slow
def test_pipeline_run_at_debug_level_says_no_salt(tmp_path: Path) -> None:
    from stedi.lake import FolderLake

    lake = tmp_path / "lake"
    fill_lake(FolderLake(lake))
    done = _stedi("-v", "pipeline", "run", "--lake", str(lake), env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    said: dict[str, bytes | str] = {"pipeline output": done.stdout + done.stderr}
    said.update(_files(lake))
    runs = [json.loads(v) for k, v in said.items() if "/_pipeline/runs/" in k]
    assert runs and runs[0]["tables"]["machine_learning_curated"] > 0  # the salt was used
    assert_no_secret(said)
