"""Fixtures for the firmware tests: the board modules built with mpy-cross, as flashed."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.build import BuildResult, build
from tests.firmware.helpers import PROFILES
from tests.gateway.simboard import sim_rig  # noqa: F401 - a radio with a board running the firmware


@pytest.fixture(scope="session")
def built_firmware(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """firmware/board compiled to .mpy once per session (what `stedi firmware build` writes)."""
    try:
        return build(tmp_path_factory.mktemp("firmware") / "build")
    except Exception as e:  # noqa: BLE001 - missing mpy-cross is a missing part, not a failure
        from tests.parts import missing_part

        missing_part(f"mpy-cross ({e})")
        raise


@pytest.fixture(scope="session")
def built_dir(built_firmware: BuildResult) -> Path:
    return built_firmware.out


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    """The board profile (esp32, picow) the test doubles behave as; tests taking it run once per port."""
    return str(request.param)
