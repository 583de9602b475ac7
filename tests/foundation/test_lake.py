"""Lake storage: the same interface over a folder and over S3 (moto's server on loopback)."""

from pathlib import Path

import pytest

from stedi.lake import FolderLake, LakeError, S3Lake, open_lake


def _exercise(lake) -> None:  # type: ignore[no-untyped-def]
    obj = lake.put("step_trainer/landing/a.jsonl", b'{"x": 1}\n')
    assert obj.size == 9
    lake.put("step_trainer/landing/b.jsonl", b"")
    lake.put("customer/landing/c.json", b"{}\n")
    assert lake.get("step_trainer/landing/a.jsonl") == b'{"x": 1}\n'
    assert [o.key for o in lake.list("step_trainer/landing/")] == [
        "step_trainer/landing/a.jsonl", "step_trainer/landing/b.jsonl",
    ]
    assert len(lake.list()) == 3
    assert lake.exists("customer/landing/c.json")
    lake.delete("customer/landing/c.json")
    assert not lake.exists("customer/landing/c.json")
    with pytest.raises(LakeError):
        lake.get("customer/landing/c.json")
    # Rewriting changes the fingerprint that incremental readers rely on.
    before = lake.list("step_trainer/landing/a")[0].etag
    lake.put("step_trainer/landing/a.jsonl", b'{"x": 2, "y": 3}\n')
    assert lake.list("step_trainer/landing/a")[0].etag != before


def test_folder_lake(lake_dir: Path) -> None:
    lake = open_lake(lake_dir)
    assert isinstance(lake, FolderLake)
    _exercise(lake)
    assert not list(lake_dir.rglob(".tmp-*")), "no temporary files are left behind"


def test_s3_lake_against_moto_server(s3_bucket: str) -> None:
    lake = open_lake(f"s3://{s3_bucket}/some/prefix")
    assert isinstance(lake, S3Lake)
    _exercise(lake)
    # Objects really live under the prefix in the bucket.
    keys = [o["Key"] for o in lake.client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert all(k.startswith("some/prefix/") for k in keys)


def test_s3_put_with_server_side_encryption(s3_bucket: str) -> None:
    lake = open_lake(f"s3://{s3_bucket}")
    lake.put("customer/landing/x.json", b"{}\n", sse="AES256")
    head = lake.client.head_object(Bucket=s3_bucket, Key="customer/landing/x.json")
    assert head["ServerSideEncryption"] == "AES256"


def test_unsupported_url_is_a_clear_error() -> None:
    with pytest.raises(LakeError, match="unsupported lake URL"):
        open_lake("ftp://host/lake")
