"""Live telemetry over MQTT (paho-mqtt 2.x): readings and status of each board.

Topics (QoS 1):

- ``stedi/<serial>/readings``: one message per committed frame,
  ``{"serialNumber", "bootId", "readings": [[seq, sensorReadingTime, distance], ...]}``;
- ``stedi/<serial>/status`` (retained): battery, buffer fill, spool depth, upload lag,
  clock offset (see ``docs/gateway.md``);
- ``stedi/gateway/<gateway id>/status`` (retained): ``{"online": true}`` while the gateway
  runs; the broker publishes the last will ``{"online": false}`` if it vanishes.

Telemetry is a live view, not the record (the spool and the lake are): when the broker is
away, paho's bounded queue fills and further messages are dropped and counted, so memory
stays bounded.  Credentials are never logged or published.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)

QOS = 1
MAX_QUEUED = 10_000


class TelemetryError(Exception):
    """The MQTT URL or options are wrong."""


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None

    @classmethod
    def from_url(cls, url: str, *, username: str | None = None, password: str | None = None,
                 ca_file: str | None = None) -> MqttSettings:
        """``mqtt://HOST:PORT`` or ``mqtts://HOST:PORT`` (TLS); user:password@ allowed in the URL."""
        parsed = urlparse(url)
        if parsed.scheme not in ("mqtt", "mqtts") or not parsed.hostname:
            raise TelemetryError(f"MQTT URL must look like mqtt://HOST:PORT or mqtts://HOST:PORT, not {url!r}")
        tls = parsed.scheme == "mqtts"
        return cls(
            host=parsed.hostname,
            port=parsed.port or (8883 if tls else 1883),
            tls=tls,
            username=username or (unquote(parsed.username) if parsed.username else None),
            password=password or (unquote(parsed.password) if parsed.password else None),
            ca_file=ca_file,
        )

    def __repr__(self) -> str:  # never show the password
        return f"MqttSettings(host={self.host!r}, port={self.port}, tls={self.tls}, username={self.username!r})"

    @property
    def where(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class Telemetry:
    """Publishes to an MQTT broker from paho's own network thread."""

    def __init__(self, settings: MqttSettings, gateway_id: str):
        import paho.mqtt.client as mqtt

        self._mqtt = mqtt
        self.settings = settings
        self.gateway_topic = f"stedi/gateway/{gateway_id}/status"
        self.dropped = 0
        self.connected = False
        self._stopping = False
        self.refused: str | None = None  # the broker's reason when it refused us
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"stedi-gateway-{gateway_id}")
        client.max_queued_messages_set(MAX_QUEUED)
        client.will_set(self.gateway_topic, json.dumps({"online": False}), qos=QOS, retain=True)
        if settings.username:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            client.tls_set(ca_certs=settings.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.reconnect_delay_set(1, 30)
        self.client = client

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            log.error("MQTT broker %s refused the connection: %s", self.settings.where, reason_code)
            return
        self.refused = None
        self.connected = True
        log.info("MQTT connected to %s", self.settings.where)
        client.publish(self.gateway_topic, json.dumps({"online": True}), qos=QOS, retain=True)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self.connected = False
        if self._stopping:
            return
        log.warning("MQTT disconnected from %s (%s); paho reconnects", self.settings.where, reason_code)

    def start(self) -> None:
        try:
            self.client.connect_async(self.settings.host, self.settings.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise TelemetryError(f"cannot reach MQTT broker {self.settings.where}: {exc}") from exc
        self.client.loop_start()

    def _publish(self, topic: str, payload: dict[str, Any], retain: bool = False) -> None:
        info = self.client.publish(topic, json.dumps(payload, separators=(",", ":")), qos=QOS, retain=retain)
        if info.rc != self._mqtt.MQTT_ERR_SUCCESS and info.rc != self._mqtt.MQTT_ERR_NO_CONN:
            self.dropped += 1
            if self.dropped in (1, 100, 10_000):
                log.warning("MQTT queue full: %d telemetry messages dropped so far", self.dropped)

    def readings(self, serial: str, boot: int, rows: Sequence[tuple[int, int, int]]) -> None:
        self._publish(f"stedi/{serial}/readings",
                      {"serialNumber": serial, "bootId": boot, "readings": [list(r) for r in rows]})

    def status(self, serial: str, status: dict[str, Any]) -> None:
        self._publish(f"stedi/{serial}/status", {"serialNumber": serial, **status}, retain=True)

    def stop(self) -> None:
        """A clean goodbye: offline status (the will is for unclean ends), then disconnect."""
        self._stopping = True
        try:
            info = self.client.publish(self.gateway_topic, json.dumps({"online": False}), qos=QOS, retain=True)
            if self.connected:
                info.wait_for_publish(timeout=2.0)
        except (RuntimeError, ValueError):
            log.debug("offline status not published", exc_info=True)
        self.client.disconnect()
        self.client.loop_stop()
