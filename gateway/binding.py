"""A gateway home is bound to one lake.

Readings and customer records must reach the same lake: the pipeline keeps a reading only when
the lake also holds its customer with research consent, so a `consent` sent to one lake and a
`run` streaming into another would leave every reading excluded.  The home therefore remembers
its lake (in the spool database, beside the customers): ``stedi gateway init --lake URL`` sets it,
or else the first command that sends something to a lake.  After that a command naming another
lake is refused unless it re-binds (``--rebind``); re-binding queues every registered customer's
current record again so that the new lake has them too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from gateway.customers import Customers
from gateway.spool import Spool
from stedi.errors import UserError

log = logging.getLogger(__name__)

#: The spool meta key holding the bound lake's URL.
LAKE_KEY = "lake"


class LakeMismatchError(UserError):
    """A command named a lake other than the one the gateway home is bound to (exit 2)."""


def canonical(url: str) -> str:
    """One spelling per lake: an absolute folder path, or ``s3://bucket/prefix`` without a trailing
    slash, so that ``demo-lake``, ``./demo-lake/`` and its absolute path are the same lake."""
    text = url.strip()
    if text.startswith("s3://"):
        return text.rstrip("/")
    if text.startswith("file://"):
        text = text[len("file://"):]
    return str(Path(text).expanduser().resolve())


@dataclass(frozen=True)
class Binding:
    """The lake a command uses and what it did to the home's binding."""

    lake: str
    previous: str | None  # the lake the home was bound to before (None: it was not bound)
    changed: bool  # the binding was written by this command (first binding or a re-bind)
    requeued: int = 0  # customer records queued again for the new lake by a re-bind


def bound_lake(spool: Spool) -> str | None:
    return spool.get_meta(LAKE_KEY)


def bind(spool: Spool, requested: str | None, fallback: str, *, rebind: bool = False,
         write: bool = True) -> Binding:
    """The lake for a command that named ``requested`` (None: it named none; then the bound lake,
    else ``fallback``, the configured default).  Binds an unbound home when ``write``; refuses a
    different lake unless ``rebind``."""
    current = bound_lake(spool)
    if requested is None:
        if current is not None:
            return Binding(current, current, changed=False)
        lake = canonical(fallback)
    else:
        lake = canonical(requested)
    if current is None:
        if write:
            spool.set_meta(LAKE_KEY, lake)
            log.info("gateway home bound to lake %s", lake)
        return Binding(lake, None, changed=write)
    if lake == current:
        return Binding(lake, current, changed=False)
    if not rebind:
        raise LakeMismatchError(
            f"this gateway home ({spool.path.parent}) is bound to the lake {current}, not {lake}: its customers' "
            "records went there, and readings sent elsewhere would have no customer",
            hint=f"drop --lake to use {current}, or move the home to the new lake with "
                 f"`stedi gateway init --lake {lake} --rebind` (its customers' records are sent there again)",
        )
    requeued = _requeue_customers(spool, lake)
    log.warning("gateway home re-bound from lake %s to %s; %d customer records queued for it", current, lake,
                requeued)
    return Binding(lake, current, changed=True, requeued=requeued)


def _requeue_customers(spool: Spool, lake: str) -> int:
    """Bind to ``lake`` and queue every customer's current record again, in one transaction, so
    that the new lake holds the customers too."""
    people = Customers(spool)
    with spool.transaction():
        everyone = people.all()
        for customer in everyone:
            spool.add_customer_event(json.dumps(customer.record(), separators=(",", ":")))
        spool.set_meta(LAKE_KEY, lake)
    return len(everyone)
