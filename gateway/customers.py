"""Customers and their consent, kept in the spool database.

Every change (registration, a consent granted or withdrawn) is written, in the same
transaction, as a customer landing record into the spool, from where the uploader
takes it to ``customer/landing/``.  Landing keeps every customer as the original
design does; the pipeline enforces consent.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Literal

from gateway.records import customer_record
from gateway.spool import Spool, now_ms

log = logging.getLogger(__name__)

Scope = Literal["research", "public", "friends"]
SCOPES: tuple[Scope, ...] = ("research", "public", "friends")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class CustomerError(ValueError):
    """A registration or consent change was refused; the message says why."""


#: The earliest birthday taken: a typo guard (the original data's three-digit years are not
#: what a person types at registration).
EARLIEST_BIRTHDAY = dt.date(1900, 1, 1)


def check_birthday(birthday: str, today: dt.date | None = None) -> dt.date:
    """A real date, YYYY-MM-DD, in the past (and not before 1900)."""
    try:
        day = dt.date.fromisoformat(birthday)
    except ValueError as exc:
        raise CustomerError(f"birthday {birthday!r} is not a date YYYY-MM-DD") from exc
    if len(birthday) != 10:
        raise CustomerError(f"birthday {birthday!r} is not a date YYYY-MM-DD")
    today = today or dt.date.today()
    if day >= today:
        raise CustomerError(f"birthday {birthday} is not in the past (today is {today.isoformat()})")
    if day < EARLIEST_BIRTHDAY:
        raise CustomerError(f"birthday {birthday} is before {EARLIEST_BIRTHDAY.isoformat()}: a typo?")
    return day


def check_serial(serial: str) -> str:
    """The step trainer's serial number as the firmware holds it: a UUID, lower case with dashes
    (``stedi firmware flash --serial`` takes the same), so the gateway matches the board it reads."""
    try:
        return str(uuid.UUID(serial.strip()))
    except ValueError:
        raise CustomerError(
            f"--serial must be the step trainer's serial number, a UUID such as "
            f"6f1c2b9e-0d3a-4c55-9a51-3e0f6c1d2b7a; got {serial!r} (`stedi firmware info --port PORT` shows "
            "a board's)"
        ) from None


def differences(old: Customer, new: Customer) -> list[str]:
    """What a re-registration changed, as ``field: old -> new`` texts."""
    return [f"{name}: {getattr(old, name)} -> {getattr(new, name)}"
            for name in ("name", "phone", "birthday", "serial") if getattr(old, name) != getattr(new, name)]


@dataclass(frozen=True)
class Customer:
    email: str
    name: str
    phone: str
    birthday: str
    serial: str
    registration: int
    last_update: int
    research: int | None
    public: int | None
    friends: int | None

    @property
    def consents_to_research(self) -> bool:
        return self.research is not None

    def record(self) -> dict[str, object]:
        return customer_record(
            name=self.name, email=self.email, phone=self.phone, birthday=self.birthday, serial=self.serial,
            registration=self.registration, last_update=self.last_update,
            research=self.research, public=self.public, friends=self.friends,
        )


_COLUMNS = "email, name, phone, birthday, serial, registration, last_update, research, public, friends"


class Customers:
    """Registration and consent on top of the spool's database."""

    def __init__(self, spool: Spool):
        self.spool = spool
        self.db = spool.db

    def get(self, email: str) -> Customer | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM customers WHERE email=?", (email,)).fetchone()
        return None if row is None else Customer(*row)

    def all(self) -> list[Customer]:
        return [Customer(*r) for r in self.db.execute(f"SELECT {_COLUMNS} FROM customers ORDER BY email")]

    def by_serial(self) -> dict[str, Customer]:
        """The customer of each board; the latest registration wins if a board changed hands."""
        out: dict[str, Customer] = {}
        for c in sorted(self.all(), key=lambda c: c.registration):
            out[c.serial] = c
        return out

    def register(self, *, email: str, name: str, phone: str, birthday: str, serial: str) -> Customer:
        email = email.strip().lower()
        if not _EMAIL.match(email):
            raise CustomerError(f"{email!r} is not an email address")
        check_birthday(birthday)
        if not name.strip() or not phone.strip() or not serial.strip():
            raise CustomerError("name, phone and serial must not be empty")
        now = now_ms()
        old = self.get(email)
        customer = Customer(
            email=email, name=name.strip(), phone=phone.strip(), birthday=birthday, serial=serial.strip(),
            # Later than the record it replaces even if the clock stepped back: the pipeline
            # keeps the record with the greatest lastUpdateDate (a withdrawal must not lose).
            registration=old.registration if old else now,
            last_update=max(now, old.last_update + 1) if old else now,
            research=old.research if old else None, public=old.public if old else None,
            friends=old.friends if old else None,
        )
        self._save(customer)
        log.info("%s customer %s with board %s", "updated" if old else "registered", email, customer.serial)
        return customer

    def remove(self, email: str) -> Customer:
        """Forget a customer on this gateway: their board is no longer served.  What reached the
        lake stays there until `stedi pipeline erase --email` removes it."""
        email = email.strip().lower()
        old = self.get(email)
        if old is None:
            raise CustomerError(f"no customer {email!r} on this gateway (`stedi gateway customers` lists them)")
        with self.spool.transaction():
            self.db.execute("DELETE FROM customers WHERE email=?", (email,))
        log.info("removed customer %s (board %s)", email, old.serial)
        return old

    def consent(self, email: str, action: Literal["grant", "withdraw"], scope: Scope) -> Customer:
        email = email.strip().lower()
        old = self.get(email)
        if old is None:
            raise CustomerError(f"no customer {email!r}: register them first (stedi gateway register)")
        if scope not in SCOPES:
            raise CustomerError(f"consent scope must be one of {', '.join(SCOPES)}")
        now = now_ms()
        current = getattr(old, scope)
        # Granting again keeps the original date: consent "as of" the first grant.
        value = (current if current is not None else now) if action == "grant" else None
        fields = {f: getattr(old, f) for f in Customer.__dataclass_fields__}
        fields[scope] = value
        fields["last_update"] = max(now, old.last_update + 1)
        customer = Customer(**fields)
        self._save(customer)
        log.info("%s %s consent for %s", "granted" if action == "grant" else "withdrew", scope, email)
        return customer

    def _save(self, c: Customer) -> None:
        line = json.dumps(c.record(), separators=(",", ":"))
        # The customer and their landing record together, or neither.
        with self.spool.transaction():
            self.db.execute(
                f"INSERT OR REPLACE INTO customers({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (c.email, c.name, c.phone, c.birthday, c.serial, c.registration, c.last_update,
                 c.research, c.public, c.friends),
            )
            self.spool.add_customer_event(line)
