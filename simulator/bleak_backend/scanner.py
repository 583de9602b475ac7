"""bleak scanner backend on a bumble central: scans the virtual radio's air."""

from __future__ import annotations

import logging
from typing import Any, Literal

from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bumble.device import Advertisement

from simulator.bleak_backend.link import CentralHost, details_of, radio_address
from simulator.radio.protocol import parse_adv

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
        self._host: CentralHost | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._host = await CentralHost.open(self._radio, "scanner")
        device = self._host.device
        device.on(device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await device.start_scanning(active=self._scanning_mode == "active", filter_duplicates=False)
        log.debug("scanning the virtual radio at %s", self._radio)

    async def stop(self) -> None:
        host, self._host = self._host, None
        if host is not None:
            await host.close()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        # bumble hands over the advert and, when scanning actively, the scan response appended
        # (its AdvertisementDataAccumulator); both are AD structures (Core Spec Vol 3 Part C 11).
        fields = parse_adv(bytes(advertisement.data))
        data = AdvertisementData(
            local_name=fields["name"],
            manufacturer_data=fields["mfr"],
            service_data=fields["svc_data"],
            service_uuids=list(dict.fromkeys(fields["uuids"])),
            tx_power=fields["tx_power"],
            rssi=int(advertisement.rssi),
            platform_data=(advertisement,),
        )
        if not self.is_allowed_uuid(data.service_uuids):
            return
        addr = str(advertisement.address).split("/")[0].upper()
        device = self.create_or_update_device(addr, addr, data.local_name, details_of(self._radio, addr), data)
        self.call_detection_callbacks(device, data)
