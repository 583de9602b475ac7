"""Server-side encryption when asked: every landing object the gateway puts into S3 (moto's
server) carries the encryption it was configured with, SSE-S3 (AES256) or SSE-KMS with the
given key; the registration command's upload honours gateway.toml's ``sse`` too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from gateway.uploader import UploadSettings, open_gateway_lake
from tests.gateway.simboard import gateway_env, write_config
from tests.parts import REPO
from tests.security.people import fill_lake


def _encryption(bucket: str) -> dict[str, tuple[str | None, str | None]]:
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    out = {}
    for key in keys:
        head = s3.head_object(Bucket=bucket, Key=key)
        out[key] = (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId"))
    return out


@pytest.mark.parametrize("gzip", [False, True])
def test_sse_s3_on_every_landing_object(s3_bucket: str, gzip: bool) -> None:
    written = fill_lake(open_gateway_lake(f"s3://{s3_bucket}/lake"), UploadSettings(sse="AES256", gzip=gzip))
    found = _encryption(s3_bucket)
    assert len(found) == written == 12  # 6 customer records, 3 boards x (step_trainer + accelerometer)
    assert {k.split("/")[1] for k in found} == {"customer", "accelerometer", "step_trainer"}
    assert set(found.values()) == {("AES256", None)}, found


def test_sse_kms_with_a_key_id_on_every_landing_object(s3_bucket: str) -> None:
    key = boto3.client("kms").create_key(Description="stedi landing")["KeyMetadata"]
    fill_lake(open_gateway_lake(f"s3://{s3_bucket}/lake"), UploadSettings(sse="aws:kms", kms_key_id=key["KeyId"]))
    found = _encryption(s3_bucket)
    assert len(found) == 12
    for sse, key_id in found.values():
        assert sse == "aws:kms"
        assert key_id is not None and key["KeyId"] in key_id


def test_without_sse_asked_objects_carry_none(s3_bucket: str) -> None:
    # The control case: the checks above see what the uploader asked for, not a bucket default.
    fill_lake(open_gateway_lake(f"s3://{s3_bucket}/lake"))
    assert {sse for sse, _ in _encryption(s3_bucket).values()} <= {None}


def test_register_command_uploads_with_the_configured_sse(s3_bucket: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home, sse="AES256")
    done = subprocess.run(
        [sys.executable, "-m", "stedi_app.cli", "gateway", "register", "--email", "dee@example.com", "--name", "Dee",
         "--phone", "555-0404", "--birthday", "1984-04-04", "--serial", "dee00004-0000-4000-8000-00000000dee0",
         "--home", str(home), "--lake", f"s3://{s3_bucket}/lake"],
        env=gateway_env(), cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    found = _encryption(s3_bucket)
    assert len(found) == 1 and set(found.values()) == {("AES256", None)}, (found, done.stdout, done.stderr)
