"""The gateway's status: what a running gateway writes to ``HOME/status.json`` every half second.

:class:`GatewayStatus` is the only writer of that file and the only reader of it: the live view,
``stedi gateway status`` and the fault harness read the typed snapshot, never the file's keys.
The file is JSON, one key per field in the order below, the boards as a list of objects.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stedi.tools import write_atomically

STATUS_FILE = "status.json"


class StatusError(ValueError):
    """A status file that is not a gateway status (not JSON, or fields missing or unknown)."""


@dataclass
class BoardStatus:
    """What the gateway knows about one board (the central keeps it up to date: BoardState)."""

    serial: str
    address: str
    connected: bool = False
    boot_id: int | None = None
    battery_pct: int | None = None
    buffer_fill: float | None = None  # share of the board's ring buffer in use
    board_dropped: int = 0
    clock_offset_ms: int | None = None  # gateway clock minus board stamp of the freshest reading
    sync_rtt_ms: float | None = None
    readings: int = 0
    duplicates: int = 0
    bad_frames: int = 0
    stale_frames: int = 0  # well-formed frames of another boot than the connected one: not stored
    gaps: int = 0
    resumes: int = 0
    connects: int = 0
    last_frame: float = 0.0  # time.monotonic() of the gateway process when the last frame was kept

    def snapshot(self) -> BoardStatus:
        """A copy of these figures alone, which the central's later updates leave unchanged."""
        return BoardStatus(**{f.name: getattr(self, f.name) for f in dataclasses.fields(BoardStatus)})


@dataclass(frozen=True)
class GatewayStatus:
    """One snapshot of a running (or stopped) gateway and its boards."""

    gateway: str  # the gateway's id
    phase: str  # starting | running | draining | stopped
    pid: int
    time: int  # epoch ms of the snapshot
    lake: str
    ble: str
    readings: int  # readings spooled in this run
    readings_per_s: float  # over the last ~5 s
    duplicates: int
    held: int  # readings kept on this device, never uploaded
    spool_depth: int  # readings waiting for upload
    spool_fill: float  # spool_depth / spool_cap
    spool_cap: int
    open_batches: int
    customer_events: int  # customer records waiting for upload
    uploaded_readings: int
    uploaded_objects: int
    last_upload_ms: int | None
    upload_lag_s: float
    upload_error: str | None  # the error that stopped uploading, else the last transient one
    error: str | None  # what ended the run, if anything did
    boards: list[BoardStatus] = field(default_factory=list)

    # ---- the file --------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> GatewayStatus:
        try:
            data: Any = json.loads(text)
        except ValueError as exc:
            raise StatusError(f"a gateway status is JSON: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("boards"), list):
            raise StatusError("a gateway status is a JSON object with a list of boards")
        try:
            boards = [BoardStatus(**board) for board in data.pop("boards")]
            return cls(**data, boards=boards)
        except TypeError as exc:  # a field missing or unknown
            raise StatusError(f"not a gateway status: {exc}") from exc

    def write(self, home: Path) -> None:
        """Replace the status file in ``home`` whole: a reader never sees half a status."""
        write_atomically(home / STATUS_FILE, self.to_json())

    @classmethod
    def read(cls, home: Path) -> GatewayStatus:
        """The status last written in ``home``; OSError when there is none, StatusError when unreadable."""
        return cls.from_json((home / STATUS_FILE).read_text())


def local_time(epoch_ms: int | None) -> str:
    """An epoch-milliseconds stamp as ISO-8601 local time with its offset, for people
    (``--json`` keeps the milliseconds); "never" for none."""
    if not epoch_ms:
        return "never"
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch_ms / 1000).astimezone().isoformat(timespec="seconds")
