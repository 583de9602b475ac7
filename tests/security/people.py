"""Three customers through the gateway's own code (registry, consent, ingest, spool, uploader)
into a lake: Ann consents to research, Bob never did, Cat granted and then withdrew."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from gateway.accel import open_source
from gateway.customers import Customers
from gateway.ingest import Ingest
from gateway.spool import Spool
from gateway.uploader import Uploader, UploadSettings
from stedi.lake import FolderLake, S3Lake

T0 = 1_790_000_000_000
READINGS = 60


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    phone: str
    birthday: str
    serial: str
    consents: bool

    def identifiers(self) -> list[str]:
        """Everything that names this person (or their board) in the lake."""
        return [self.name, self.email, self.serial, self.phone]


ANN = Person("Ann Consenting", "ann.consenting@example.com", "555-0101", "1981-01-01",
             "a11a0001-0000-4000-8000-00000000a11a", True)
BOB = Person("Bob Neverasked", "bob.neverasked@example.com", "555-0202", "1982-02-02",
             "b0b00002-0000-4000-8000-00000000b0b0", False)
CAT = Person("Cat Withdrawn", "cat.withdrawn@example.com", "555-0303", "1983-03-03",
             "ca7a0003-0000-4000-8000-00000000ca7a", False)
PEOPLE = (ANN, BOB, CAT)


def fill_lake(lake: FolderLake | S3Lake, settings: UploadSettings | None = None) -> int:
    """Register, consent, spool READINGS readings per board, upload all; returns objects written."""
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp), synchronous="OFF")
        try:
            customers = Customers(spool)
            for p in PEOPLE:
                customers.register(email=p.email, name=p.name, phone=p.phone, birthday=p.birthday, serial=p.serial)
            customers.consent(ANN.email, "grant", "research")
            customers.consent(CAT.email, "grant", "research")
            customers.consent(CAT.email, "withdraw", "research")
            ingest = Ingest(spool, open_source("sim"))
            for p in PEOPLE:
                readings = [(s, T0 + 50 * s, 200 + s) for s in range(READINGS)]
                for i in range(0, READINGS, 20):
                    assert not ingest.add(p.serial, 7, readings[i:i + 20]).refused
            uploader = Uploader(spool, lake, settings or UploadSettings())
            uploader.drain_sync()
            return len(lake.list())
        finally:
            spool.close()
