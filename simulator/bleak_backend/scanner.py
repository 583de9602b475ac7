"""bleak scanner backend for the virtual radio."""

from __future__ import annotations

import logging
from typing import Any, Literal

from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner

from simulator.bleak_backend.link import RadioLink, details_of, radio_address
from simulator.radio.protocol import Frame, from_hex, parse_adv

log = logging.getLogger(__name__)


class SimScanner(BaseBleakScanner):
    """Scans the virtual radio.  Extra keyword: ``radio="sim://HOST:PORT"`` (else env
    ``STEDI_RADIO``).  Selected with ``BleakScanner(..., **backend_kwargs(url))``."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        *,
        radio: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._radio = radio_address(radio)
        self._scanning_mode = scanning_mode
        self._link: RadioLink | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._link = RadioLink(self._radio, self._on_frame, lambda: None)
        await self._link.open("scanner")
        self._link.send({"t": "scan", "on": True})
        log.debug("scanning the virtual radio at %s", self._radio)

    async def stop(self) -> None:
        if self._link is not None:
            if self._link.is_open:
                self._link.send({"t": "scan", "on": False})
            await self._link.close()
            self._link = None

    def _on_frame(self, frame: Frame) -> None:
        if frame["t"] != "adv":
            return
        adv = from_hex(frame.get("adv"))
        resp = from_hex(frame.get("resp")) if self._scanning_mode == "active" else b""
        fields = parse_adv(adv)
        more = parse_adv(resp)
        name = fields["name"] or more["name"]
        uuids = list(dict.fromkeys(fields["uuids"] + more["uuids"]))
        data = AdvertisementData(
            local_name=name,
            manufacturer_data={**fields["mfr"], **more["mfr"]},
            service_data={**fields["svc_data"], **more["svc_data"]},
            service_uuids=uuids,
            tx_power=fields["tx_power"] if fields["tx_power"] is not None else more["tx_power"],
            rssi=int(frame.get("rssi", -60)),
            platform_data=(frame,),
        )
        if not self.is_allowed_uuid(data.service_uuids):
            return
        addr = str(frame["addr"])
        device = self.create_or_update_device(addr, addr, name, details_of(self._radio, addr), data)
        self.call_detection_callbacks(device, data)
