"""`stedi gateway` command line: help, config file and flags, clear errors, status."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gateway.config import load
from gateway.spool import Spool
from stedi_app.cli import app
from tests.gateway.util import rows

runner = CliRunner()


def test_help_explains_every_command() -> None:
    out = runner.invoke(app, ["gateway", "--help"]).output
    for command in ("run", "status", "register", "consent"):
        assert command in out
    run_help = runner.invoke(app, ["gateway", "run", "--help"]).output
    for flag in ("--home", "--ble", "--lake", "--mqtt", "--accel", "--duration", "--batch-bytes", "--sse",
                 "--hold-unconsented"):
        assert flag in run_help


def test_config_file_then_flags(tmp_path: Path) -> None:
    (tmp_path / "gateway.toml").write_text('[gateway]\nbatch_age_s = 5\naccel = "sim"\nlake = "/data/lake"\n')
    config = load(tmp_path, {"lake": "s3://b/p", "accel": None})
    assert (config.batch_age_s, config.accel, config.lake) == (5, "sim", "s3://b/p")


def test_bad_settings_stop_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "gateway.toml").write_text("[gateway]\nbatch_seconds = 5\n")
    result = runner.invoke(app, ["gateway", "run", "--home", str(tmp_path), "--no-live"])
    assert result.exit_code == 2 and "unknown keys batch_seconds" in result.output
    (tmp_path / "gateway.toml").write_text('[gateway]\naccel = "sim"\n')
    result = runner.invoke(app, ["gateway", "run", "--home", str(tmp_path), "--ble", "usb", "--no-live"])
    assert result.exit_code == 2 and "--ble must be 'bleak' or 'sim://HOST:PORT'" in result.output
    result = runner.invoke(app, ["gateway", "run", "--home", str(tmp_path), "--sse", "rot13", "--no-live"])
    assert result.exit_code == 2 and "sse must be" in result.output


def test_status_shows_spool_and_resume_points(tmp_path: Path) -> None:
    result = runner.invoke(app, ["gateway", "status", "--home", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no gateway spool" in result.output
    spool = Spool(tmp_path, max_readings=1000)
    spool.add_readings("board-7", 12, rows(0, 50))
    spool.close()
    result = runner.invoke(app, ["gateway", "status", "--home", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["spool_depth"] == 50
    assert status["resume_points"] == [{"serial": "board-7", "boot": 12, "last_seq": 49}]
    table = runner.invoke(app, ["gateway", "status", "--home", str(tmp_path)]).output
    assert "spool depth" in table and "board-7" in table and "last_upload_ms" not in table


def test_run_stops_with_exit_3_on_a_permanent_upload_error(s3_server: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.gateway.simboard import gateway_env, stedi
    from tests.parts import REPO, free_port

    env = gateway_env(STEDI_HOME=str(tmp_path))
    reg = stedi("gateway", "register", "--email", "p@x.org", "--name", "P", "--phone", "1", "--birthday",
                "1970-01-01", "--serial", "00000005-0000-4000-8000-000000000000", "--no-upload", env=env)
    assert reg.returncode == 0, reg.stderr
    (tmp_path / "gateway.toml").write_text('accel = "sim"\nscan_s = 0.5\n')
    run = subprocess.run(
        [sys.executable, "-m", "stedi_app.cli", "gateway", "run", "--ble", f"sim://127.0.0.1:{free_port()}",
         "--lake", "s3://no-such-bucket-stedi/x", "--duration", "30", "--no-live"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 3, run.stderr[-2000:]
    assert "NoSuchBucket" in run.stderr and "the spool keeps the data" in run.stderr
    status = json.loads(stedi("gateway", "status", "--json", env=env).stdout)
    assert status["customer_records_waiting"] == 1


def test_first_signal_drains_second_signal_exits_at_once(s3_server: str, s3_bucket: str, tmp_path: Path) -> None:
    """With S3 unreachable the drain after SIGTERM keeps retrying; a second SIGTERM ends it at
    once, and the spool keeps what was not uploaded."""
    import signal
    import subprocess
    import sys
    import time

    from tests.gateway.proxy import TcpProxy
    from tests.gateway.simboard import gateway_env, stedi
    from tests.parts import REPO, free_port

    proxy = TcpProxy(int(s3_server.rsplit(":", 1)[1]))
    proxy.off()
    env = gateway_env(STEDI_HOME=str(tmp_path), AWS_ENDPOINT_URL=proxy.url)
    try:
        reg = stedi("gateway", "register", "--email", "q@x.org", "--name", "Q", "--phone", "1", "--birthday",
                    "1970-01-01", "--serial", "00000006-0000-4000-8000-000000000000", "--no-upload", env=env)
        assert reg.returncode == 0, reg.stderr
        (tmp_path / "gateway.toml").write_text('accel = "sim"\nscan_s = 0.5\n')
        gw = subprocess.Popen(
            [sys.executable, "-m", "stedi_app.cli", "gateway", "run", "--ble", f"sim://127.0.0.1:{free_port()}",
             "--lake", f"s3://{s3_bucket}/x", "--no-live"],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(3)
        gw.send_signal(signal.SIGTERM)
        time.sleep(2)
        assert gw.poll() is None  # still trying to upload the spooled record
        gw.send_signal(signal.SIGTERM)
        _, err = gw.communicate(timeout=20)
        assert gw.returncode == 130, err[-2000:]
        assert "second stop request" in err
    finally:
        proxy.close()
    status = json.loads(stedi("gateway", "status", "--json", env=env).stdout)
    assert status["customer_records_waiting"] == 1
