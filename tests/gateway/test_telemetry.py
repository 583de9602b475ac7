"""MQTT telemetry against a real mosquitto: readings and status topics at QoS 1, the gateway's
online status, and its last will when the gateway process dies."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from gateway.telemetry import MqttSettings, Telemetry
from tests.parts import missing_part


def _subscriber(host: str, port: int, topic: str) -> tuple[mqtt.Client, queue.Queue[tuple[str, Any, int, bool]]]:
    got: queue.Queue[tuple[str, Any, int, bool]] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    subscribed = queue.Queue[int]()
    client.on_message = lambda c, u, m: got.put((m.topic, json.loads(m.payload), m.qos, bool(m.retain)))
    client.on_subscribe = lambda c, u, mid, rc, p: subscribed.put(mid)
    client.connect(host, port)
    client.loop_start()
    client.subscribe(topic, qos=1)
    subscribed.get(timeout=5)
    return client, got


def _next(got: queue.Queue[tuple[str, Any, int, bool]], topic: str, timeout: float = 10) -> tuple[Any, int, bool]:
    deadline = time.monotonic() + timeout
    while True:
        t, payload, qos, retain = got.get(timeout=max(0.01, deadline - time.monotonic()))
        if t == topic:
            return payload, qos, retain


def test_readings_and_status_reach_the_broker(mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    sub, got = _subscriber(host, port, "stedi/#")
    telemetry = Telemetry(MqttSettings.from_url(f"mqtt://{host}:{port}"), "gw-test-1")
    try:
        telemetry.start()
        online, _, _ = _next(got, "stedi/gateway/gw-test-1/status")
        assert online == {"online": True}
        telemetry.readings("serial-9", 77, [(1, 1_790_000_000_000, 250), (2, 1_790_000_000_050, 240)])
        payload, qos, _ = _next(got, "stedi/serial-9/readings")
        assert payload == {"serialNumber": "serial-9", "bootId": 77,
                           "readings": [[1, 1_790_000_000_000, 250], [2, 1_790_000_000_050, 240]]}
        assert qos == 1
        telemetry.status("serial-9", {"battery": 80, "bufferFill": 0.1, "spoolDepth": 5, "uploadLagS": 1.0,
                                      "clockOffsetMs": 12})
        status, qos, _ = _next(got, "stedi/serial-9/status")
        assert status["battery"] == 80 and status["clockOffsetMs"] == 12 and qos == 1
        late, late_got = _subscriber(host, port, "stedi/serial-9/status")  # status is retained
        assert _next(late_got, "stedi/serial-9/status") == (status, 1, True)
        late.loop_stop()
        late.disconnect()
    finally:
        telemetry.stop()
    offline, _, _ = _next(got, "stedi/gateway/gw-test-1/status")
    assert offline == {"online": False}
    sub.loop_stop()
    sub.disconnect()


_DIES = """
import sys, time
from gateway.telemetry import MqttSettings, Telemetry
from tests.parts import missing_part
t = Telemetry(MqttSettings.from_url(sys.argv[1], username="user", password="s3cret-pw"), "gw-dies")
t.start()
while not t.connected:
    time.sleep(0.05)
print("connected", repr(t.settings), flush=True)
time.sleep(60)
"""


def test_last_will_when_the_gateway_dies_and_no_password_in_output(mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    sub, got = _subscriber(host, port, "stedi/gateway/gw-dies/status")
    proc = subprocess.Popen([sys.executable, "-c", _DIES, f"mqtt://{host}:{port}"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("connected") and "s3cret" not in line
        assert _next(got, "stedi/gateway/gw-dies/status")[0] == {"online": True}
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        # mosquitto publishes the will once it notices the dead connection (socket closed by the kernel).
        assert _next(got, "stedi/gateway/gw-dies/status", timeout=15)[0] == {"online": False}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sub.loop_stop()
        sub.disconnect()


def test_tls_with_username_and_password(tmp_path: Path) -> None:
    """mqtts:// against a mosquitto TLS listener that requires a user name and password."""
    from tests.parts import LocalServer, free_port, mosquitto_binary

    binary = mosquitto_binary()
    if binary is None or shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None:
        missing_part("mosquitto, mosquitto_passwd and openssl")
    key, cert, passwd = tmp_path / "key.pem", tmp_path / "cert.pem", tmp_path / "passwd"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "gateway-7", "s3cret-pw"], check=True,
                   capture_output=True)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"user root\nlistener {port} 127.0.0.1\ncafile {cert}\ncertfile {cert}\nkeyfile {key}\n"
                    f"allow_anonymous false\npassword_file {passwd}\npersistence false\n")
    broker = LocalServer([binary, "-c", str(conf)], port, log=tmp_path / "mosquitto.log")
    try:
        good = Telemetry(MqttSettings.from_url(f"mqtts://127.0.0.1:{port}", username="gateway-7",
                                               password="s3cret-pw", ca_file=str(cert)), "gw-tls")
        bad = Telemetry(MqttSettings.from_url(f"mqtts://127.0.0.1:{port}", username="gateway-7",
                                              password="wrong", ca_file=str(cert)), "gw-bad")
        good.start()
        bad.start()
        deadline = time.monotonic() + 10
        while not (good.connected and bad.refused) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert good.connected and not bad.connected
        assert bad.refused is not None and "authori" in bad.refused.lower(), bad.refused
        assert "s3cret" not in repr(good.settings)
        good.stop()
        bad.stop()
    finally:
        broker.stop()
