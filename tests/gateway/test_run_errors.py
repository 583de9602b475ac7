"""`stedi gateway run` ends with one clear message and a documented exit code when a person must
act: credentials missing or rejected (exit 3), no BlueZ for `--ble bleak` (exit 2); `--duration`
bounds the run even while uploads fail (exit 1); and with nobody registered it says so at start.

Each case runs the real command in a child process and checks the spool kept what was not
uploaded (a customer record waits in it: nothing lost, nothing marked uploaded).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.spool import Spool
from tests.gateway.simboard import gateway_env, stedi
from tests.gateway.util import rows
from tests.parts import free_port

SERIAL = "00000007-0000-4000-8000-000000000000"

# S3's answer to a request signed with an access key it does not know: HTTP 403 with the
# InvalidAccessKeyId error document ("The AWS access key ID that you provided does not exist in
# our records.", https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList).
INVALID_KEY_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidAccessKeyId</Code>'
    b"<Message>The AWS Access Key Id you provided does not exist in our records.</Message>"
    b"<AWSAccessKeyId>AKIAEXAMPLEEXAMPLE00</AWSAccessKeyId><RequestId>4442587FB7D0A2F9</RequestId>"
    b"<HostId>stub</HostId></Error>"
)


class _RejectingS3(BaseHTTPRequestHandler):
    """Answers every request as S3 answers an unknown access key."""

    def _reject(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(INVALID_KEY_BODY)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(INVALID_KEY_BODY)

    do_PUT = do_GET = do_HEAD = do_POST = _reject  # noqa: N815 - http.server's method names

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def rejecting_s3() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RejectingS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _home_with_a_customer(home: Path, env: dict[str, str]) -> None:
    reg = stedi("gateway", "register", "--email", "p@x.org", "--name", "P", "--phone", "1", "--birthday",
                "1970-01-01", "--serial", SERIAL, "--no-upload", env=env)
    assert reg.returncode == 0, reg.stderr
    spool = Spool(home)  # readings a board sent before: they must stay spooled, not be marked uploaded
    spool.add_readings(SERIAL, 1, rows(0, 10))
    spool.close()
    (home / "gateway.toml").write_text('accel = "sim"\nscan_s = 0.5\ndrain_s = 3\n')


def _run(env: dict[str, str], *args: str, timeout: float = 60) -> tuple[int, str, float]:
    started = time.monotonic()
    run = stedi("gateway", "run", "--ble", f"sim://127.0.0.1:{free_port()}", "--no-live", *args, env=env,
                timeout=timeout)
    return run.returncode, run.stderr, time.monotonic() - started


def _waiting(env: dict[str, str]) -> int:
    status = json.loads(stedi("gateway", "status", "--json", env=env).stdout)
    assert status["uploaded_objects"] == 0 and status["uploaded_readings"] == 0
    assert status["spool_depth"] == 10
    return int(status["customer_records_waiting"])


def test_missing_credentials_stop_the_run_with_exit_3_within_its_duration(tmp_path: Path) -> None:
    no_credentials = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
                      "AWS_PROFILE": "", "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                      "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true",
                      "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    env = gateway_env(STEDI_HOME=str(tmp_path), **no_credentials)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(name)
    _home_with_a_customer(tmp_path, env)
    code, err, took = _run(env, "--lake", "s3://stedi-bucket/x", "--duration", "8")
    assert code == 3, err[-2000:]
    assert "NoCredentialsError" in err and "AWS_ACCESS_KEY_ID" in err and "the spool keeps the data" in err
    assert "Traceback" not in err and took < 30
    assert _waiting(env) == 1


def test_rejected_credentials_stop_the_run_with_exit_3(tmp_path: Path, rejecting_s3: str) -> None:
    env = gateway_env(STEDI_HOME=str(tmp_path), AWS_ENDPOINT_URL=rejecting_s3, AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
                      AWS_SECRET_ACCESS_KEY="wrong", AWS_DEFAULT_REGION="us-east-1")
    _home_with_a_customer(tmp_path, env)
    code, err, took = _run(env, "--lake", "s3://stedi-bucket/x", "--duration", "8")
    assert code == 3, err[-2000:]
    assert "InvalidAccessKeyId" in err and "S3 does not know this access key id" in err
    assert "Traceback" not in err and took < 30
    assert _waiting(env) == 1


def test_duration_bounds_the_run_while_uploads_keep_failing(tmp_path: Path) -> None:
    # Nothing listens on the endpoint: every put fails with a connection error, which is
    # transient and retried; --duration 2 plus drain_s 3 still ends the run.
    env = gateway_env(STEDI_HOME=str(tmp_path), AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
                      AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s", AWS_DEFAULT_REGION="us-east-1")
    _home_with_a_customer(tmp_path, env)
    code, err, took = _run(env, "--lake", "s3://stedi-bucket/x", "--duration", "2")
    assert code == 1, err[-2000:]
    assert "the upload did not finish" in err and "10 readings and 1 customer records stay in the spool" in err
    assert took < 25
    assert _waiting(env) == 1


def test_bleak_without_a_dbus_system_bus_says_so(tmp_path: Path) -> None:
    env = gateway_env(STEDI_HOME=str(tmp_path), DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={tmp_path}/no-bus")
    _home_with_a_customer(tmp_path, env)
    run = stedi("gateway", "run", "--ble", "bleak", "--lake", str(tmp_path / "lake"), "--duration", "5",
                "--no-live", env=env)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "D-Bus system bus" in run.stderr and "--ble sim://" in run.stderr
    assert "Traceback" not in run.stderr and "Errno 2" not in run.stderr


def test_a_run_with_nobody_registered_warns_at_start(tmp_path: Path) -> None:
    env = gateway_env(STEDI_HOME=str(tmp_path))
    (tmp_path / "gateway.toml").write_text('accel = "sim"\nscan_s = 0.5\n')
    code, err, _ = _run(env, "--lake", str(tmp_path / "lake"), "--duration", "1")
    assert code == 0, err[-2000:]
    warnings = [line for line in err.splitlines() if "WARNING" in line]
    assert any("no customer is registered" in line and "stedi gateway register" in line for line in warnings)


def test_a_failed_scan_names_the_missing_part() -> None:
    from gateway.ble import explain_scan_error

    assert "no D-Bus system bus, so no BlueZ" in explain_scan_error(FileNotFoundError(2, "No such file or directory"))
    assert "BlueZ is not running" in explain_scan_error(
        Exception("[org.freedesktop.DBus.Error.ServiceUnknown] The name org.bluez was not provided"))
    assert "no Bluetooth adapter" in explain_scan_error(Exception("No Bluetooth adapters found."))
    assert explain_scan_error(TimeoutError("scan timed out")) == "scan timed out"
