"""The gateway's settings: built-in defaults, then ``<home>/gateway.toml``, then command-line flags.

Every key of the file is a field of :class:`GatewayConfig` (``docs/gateway.md`` lists them).
Secrets do not belong in the file: the MQTT password is read from ``STEDI_MQTT_PASSWORD``
when not given, and is never logged.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stedi.settings import DEFAULT_BATCH_AGE_S, DEFAULT_BATCH_BYTES, default_home, default_lake

CONFIG_FILE = "gateway.toml"


class ConfigError(ValueError):
    """The config file or a flag holds a value the gateway cannot use."""


@dataclass
class GatewayConfig:
    lake: str = ""  # empty: stedi.settings.default_lake()
    ble: str = "bleak"  # bleak | sim://HOST:PORT
    mqtt: str | None = None  # mqtt://HOST:PORT or mqtts://HOST:PORT
    mqtt_username: str | None = None
    mqtt_password: str | None = dataclasses.field(default=None, repr=False)
    mqtt_ca_file: str | None = None
    accel: str = "plyer"  # plyer | sim | replay:FILE
    accel_mode: str = "interpolate"  # interpolate | nearest
    batch_bytes: int = DEFAULT_BATCH_BYTES
    batch_age_s: float = DEFAULT_BATCH_AGE_S
    gzip: bool = False
    sse: str | None = None  # AES256 (SSE-S3) | aws:kms
    kms_key_id: str | None = None
    spool_max_readings: int = 1_000_000
    spool_sync: str = "FULL"  # FULL | NORMAL (SQLite synchronous)
    hold_unconsented: bool = False
    resync_s: float = 600.0
    status_s: float = 5.0
    scan_s: float = 3.0
    max_boards: int = 7
    clock: str = "system"  # system | offset-file:PATH (gateway/clock.py)
    drain_s: float = 30.0  # after --duration: the longest the final upload may take before the run stops
    spool_commit_delay_s: float = 0.0  # fault tests only: hold each spool transaction open this long

    def validate(self) -> GatewayConfig:
        if self.accel_mode not in ("interpolate", "nearest"):
            raise ConfigError("accel_mode must be 'interpolate' or 'nearest'")
        if self.sse not in (None, "AES256", "aws:kms"):
            raise ConfigError("sse must be 'AES256' (SSE-S3) or 'aws:kms'")
        if self.kms_key_id and self.sse != "aws:kms":
            raise ConfigError("kms_key_id needs sse = 'aws:kms'")
        if self.spool_sync.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ConfigError("spool_sync must be FULL, NORMAL or EXTRA")
        if not 0 <= self.spool_commit_delay_s <= 10:
            raise ConfigError("spool_commit_delay_s must be between 0 and 10 (seconds)")
        if self.clock != "system" and not (self.clock.startswith("offset-file:") and len(self.clock) > 12):
            raise ConfigError("clock must be 'system' or 'offset-file:PATH'")
        if not 0 <= self.drain_s <= 3600:
            raise ConfigError("drain_s must be between 0 and 3600 (seconds)")
        if self.batch_bytes < 1024 or self.batch_age_s <= 0 or self.spool_max_readings < 1:
            raise ConfigError("batch_bytes >= 1024, batch_age_s > 0 and spool_max_readings >= 1 are required")
        return self


_FIELDS = {f.name: f for f in dataclasses.fields(GatewayConfig)}


def load_file(home: Path) -> dict[str, Any]:
    """The settings ``home/gateway.toml`` holds (none when there is no such file)."""
    path = home / CONFIG_FILE
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    section = dict(data.get("gateway", data))
    unknown = sorted(set(section) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(unknown)} (see docs/gateway.md)")
    return section


def load(home: Path, overrides: dict[str, Any] | None = None) -> GatewayConfig:
    """Defaults, then ``home/gateway.toml``, then ``overrides`` (flags; None means not given)."""
    values: dict[str, Any] = load_file(home)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    try:
        config = GatewayConfig(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc
    if not config.lake:
        config.lake = default_lake()
    if config.mqtt_password is None:
        config.mqtt_password = os.environ.get("STEDI_MQTT_PASSWORD")
    return config.validate()


def resolve_home(home: Path | None) -> Path:
    return (home or default_home()).expanduser()
