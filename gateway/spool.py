"""The durable spool: an SQLite database (WAL) in the gateway's home folder.

Every reading a board sends is committed here before the board is acknowledged, and
leaves only after the landing object holding it has been stored and verified.  The
spool remembers, per board and boot, the last sequence number it durably holds
(the *watermark*): a board resumes after it, and anything at or below it is a
repeat and is dropped.  Batches are cut (their boundaries written down) before they
are uploaded, so a batch is never re-cut differently after a crash and its object
key, derived from those boundaries, never changes.

Policy when full: the spool holds at most ``max_readings`` readings waiting for
upload.  A frame that would go over is refused whole and not acknowledged, so the
board keeps it in its own buffer and sends it again once the uploader has made room.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SPOOL_FILE = "spool.sqlite3"

#: Structured log event (``extra``: event, state ``begins``/``done``) around each frame's commit;
#: the fault suite reads it from the JSON log (STEDI_LOG_FORMAT=json) to tell whether a SIGKILL
#: landed inside a commit.  The message's wording is for people and may change.
COMMIT_EVENT = "spool_commit"

#: One reading as the spool keeps it: seq, sensorReadingTime (epoch ms), distance,
#: customer email (accelerometer ``user``), and the paired accelerometer sample.
Row = tuple[int, int, int, str, float, float, float]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS boards(
    id INTEGER PRIMARY KEY,
    serial TEXT UNIQUE NOT NULL
);
CREATE TABLE IF NOT EXISTS readings(
    board INTEGER NOT NULL, boot INTEGER NOT NULL, seq INTEGER NOT NULL,
    t INTEGER NOT NULL, distance INTEGER NOT NULL,
    user TEXT NOT NULL, ax REAL NOT NULL, ay REAL NOT NULL, az REAL NOT NULL,
    batch INTEGER,
    PRIMARY KEY(board, boot, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS held_readings(
    board INTEGER NOT NULL, boot INTEGER NOT NULL, seq INTEGER NOT NULL,
    t INTEGER NOT NULL, distance INTEGER NOT NULL,
    user TEXT NOT NULL, ax REAL NOT NULL, ay REAL NOT NULL, az REAL NOT NULL,
    PRIMARY KEY(board, boot, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS watermarks(
    board INTEGER NOT NULL, boot INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    PRIMARY KEY(board, boot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    board INTEGER NOT NULL, boot INTEGER NOT NULL,
    first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, count INTEGER NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS customer_events(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    line TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS customers(
    email TEXT PRIMARY KEY,
    name TEXT NOT NULL, phone TEXT NOT NULL, birthday TEXT NOT NULL, serial TEXT NOT NULL,
    registration INTEGER NOT NULL, last_update INTEGER NOT NULL,
    research INTEGER, public INTEGER, friends INTEGER
);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SpoolError(Exception):
    """The spool cannot be opened or written."""


@dataclass(frozen=True)
class Batch:
    """Readings of one board and boot, cut for one upload; boundaries are durable."""

    id: int
    serial: str
    boot: int
    first_seq: int
    last_seq: int
    count: int


@dataclass(frozen=True)
class IngestResult:
    """What became of one frame: the watermark to acknowledge and what was kept."""

    acked_seq: int | None  # last seq durably held for this board and boot (None: nothing yet)
    accepted: int
    duplicates: int
    refused: bool  # spool full: nothing kept, nothing to acknowledge


@dataclass(frozen=True)
class SpoolStats:
    pending: int  # readings waiting for upload (cut or not)
    batches: int  # cut batches waiting for upload
    held: int  # readings kept on the device, never uploaded
    customer_events: int
    max_readings: int
    uploaded_readings: int
    uploaded_objects: int
    last_upload_ms: int | None

    @property
    def fill(self) -> float:
        return self.pending / self.max_readings if self.max_readings else 0.0


def now_ms() -> int:
    return int(time.time() * 1000)


class Transaction:
    """A write transaction of the spool that is open (see :meth:`Spool.transaction`)."""

    def __init__(self, spool: Spool):
        self._spool = spool

    def rollback(self) -> None:
        """Undo what this transaction wrote, now; the ``with`` block then ends without a COMMIT."""
        self._spool._rollback()


class Spool:
    """The gateway's durable queue.  One connection, used from one thread."""

    def __init__(
        self, home: str | Path, *, max_readings: int = 1_000_000, synchronous: str = "FULL", commit_delay_s: float = 0.0
    ):
        self.home = Path(home).expanduser()
        #: Fault tests only (config ``spool_commit_delay_s``): keep each frame's transaction open
        #: this long before COMMIT, so that a SIGKILL can be aimed at a commit in progress.
        self.commit_delay_s = commit_delay_s
        self.home.mkdir(parents=True, exist_ok=True)
        self.path = self.home / SPOOL_FILE
        self.max_readings = max_readings
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the board is acknowledged, even on power loss.
            self.db.execute(f"PRAGMA synchronous={synchronous}")
            self.db.execute("PRAGMA cache_size=-16000")  # 16 MB page cache, whatever the backlog
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot open the spool {self.path}: {exc}") from exc
        self._boards: dict[str, int] = dict(self.db.execute("SELECT serial, id FROM boards"))
        self._serials = {v: k for k, v in self._boards.items()}
        #: Boards whose row the open transaction inserted (forgotten again if it rolls back).
        self._boards_in_transaction: list[str] = []
        self._watermarks: dict[tuple[int, int], int] = {
            (b, boot): s for b, boot, s in self.db.execute("SELECT board, boot, last_seq FROM watermarks")
        }
        self._pending = self.db.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
        # Unbatched readings per (board, boot) and when the first of them arrived (monotonic).
        self._unbatched: dict[tuple[int, int], int] = {}
        self._since: dict[tuple[int, int], float] = {}
        for b, boot, n in self.db.execute(
            "SELECT board, boot, COUNT(*) FROM readings WHERE batch IS NULL GROUP BY board, boot"
        ):
            self._unbatched[(b, boot)] = n
            self._since[(b, boot)] = float("-inf")  # waited through a restart: cut at once
        log.info("spool %s: %d readings pending, cap %d", self.path, self._pending, max_readings)

    # ---- transactions ----------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Every write of the ``with`` block, or none: BEGIN IMMEDIATE, COMMIT at the end.

        Anything raised in the block, a failed COMMIT included, rolls it back; so does
        BaseException (a cancelled task, Ctrl-C), or the connection would be left inside a
        transaction that the next BEGIN fails on.
        """
        # IMMEDIATE: take the write lock now, so a register/consent command running beside the
        # gateway waits at BEGIN (busy timeout) instead of failing in the middle of the block.
        self.db.execute("BEGIN IMMEDIATE")
        self._boards_in_transaction = []
        try:
            yield Transaction(self)
            if self.db.in_transaction:  # not when the block rolled back itself
                self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self._rollback()
            raise

    def _rollback(self) -> None:
        self.db.execute("ROLLBACK")
        # A board first seen in the transaction lost its row: its id must go too, or later
        # readings would be kept under an id no row names (and a restart would not know them).
        for serial in self._boards_in_transaction:
            self._serials.pop(self._boards.pop(serial), None)
        self._boards_in_transaction = []

    # ---- boards and watermarks -------------------------------------------------------

    def _board_id(self, serial: str) -> int:
        bid = self._boards.get(serial)
        if bid is None:
            cur = self.db.execute("INSERT INTO boards(serial) VALUES (?)", (serial,))
            bid = int(cur.lastrowid or 0)
            self._boards[serial] = bid
            self._serials[bid] = serial
            self._boards_in_transaction.append(serial)
        return bid

    def watermark(self, serial: str, boot: int) -> int | None:
        """The last sequence number durably spooled for this board and boot."""
        bid = self._boards.get(serial)
        return None if bid is None else self._watermarks.get((bid, boot))

    # ---- ingest ----------------------------------------------------------------------

    def add_readings(self, serial: str, boot: int, rows: Sequence[Row], *, held: bool = False) -> IngestResult:
        """Commit one frame's readings; only then may the board be acknowledged."""
        log.debug("spool commit begins: %s boot %d, %d readings", serial, boot, len(rows),
                  extra={"event": COMMIT_EVENT, "state": "begins"})
        with self.transaction() as tx:
            bid = self._board_id(serial)
            key = (bid, boot)
            mark = self._watermarks.get(key, -1)
            fresh = [r for r in rows if r[0] > mark]
            dups = len(rows) - len(fresh)
            if not fresh:
                return IngestResult(self._watermarks.get(key), 0, dups, False)
            if not held and self._pending + len(fresh) > self.max_readings:
                tx.rollback()  # refused whole: not even a new board's row is kept
                return IngestResult(self._watermarks.get(key), 0, dups, True)
            table = "held_readings" if held else "readings"
            cols = "board, boot, seq, t, distance, user, ax, ay, az"
            # bid and boot are ints from our own table and the decoder: safe to inline.
            self.db.executemany(
                f"INSERT OR IGNORE INTO {table}({cols}) VALUES ({int(bid)}, {int(boot)}, ?, ?, ?, ?, ?, ?, ?)", fresh
            )
            top = max(r[0] for r in fresh)
            self.db.execute(
                "INSERT INTO watermarks(board, boot, last_seq) VALUES (?, ?, ?) "
                "ON CONFLICT(board, boot) DO UPDATE SET last_seq = excluded.last_seq",
                (bid, boot, top),
            )
            if self.commit_delay_s:
                time.sleep(self.commit_delay_s)
        self._watermarks[key] = top
        log.debug("spool commit done: %s boot %d up to seq %d", serial, boot, top,
                  extra={"event": COMMIT_EVENT, "state": "done"})
        if not held:
            self._pending += len(fresh)
            if key not in self._unbatched or self._unbatched[key] == 0:
                self._since[key] = time.monotonic()
            self._unbatched[key] = self._unbatched.get(key, 0) + len(fresh)
        return IngestResult(top, len(fresh), dups, False)

    # ---- batches ---------------------------------------------------------------------

    def cut_batches(self, *, max_count: int, max_age_s: float, force: bool = False) -> list[Batch]:
        """Write down the boundaries of every batch that is due: full, old, or forced."""
        out: list[Batch] = []
        now = time.monotonic()
        for key, n in list(self._unbatched.items()):
            while n > 0 and (force or n >= max_count or now - self._since.get(key, float("-inf")) >= max_age_s):
                batch = self._cut_one(key, max_count)
                out.append(batch)
                n -= batch.count
                self._unbatched[key] = n
                self._since[key] = now
            if n <= 0:
                self._unbatched.pop(key, None)
                self._since.pop(key, None)
        return out

    def _cut_one(self, key: tuple[int, int], max_count: int) -> Batch:
        bid, boot = key
        seqs = [
            s
            for (s,) in self.db.execute(
                "SELECT seq FROM readings WHERE board=? AND boot=? AND batch IS NULL ORDER BY seq LIMIT ?",
                (bid, boot, max_count),
            )
        ]
        first, last = seqs[0], seqs[-1]
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO batches(board, boot, first_seq, last_seq, count, created) VALUES (?,?,?,?,?,?)",
                (bid, boot, first, last, len(seqs), now_ms()),
            )
            batch_id = int(cur.lastrowid or 0)
            self.db.execute(
                "UPDATE readings SET batch=? WHERE board=? AND boot=? AND seq BETWEEN ? AND ? AND batch IS NULL",
                (batch_id, bid, boot, first, last),
            )
        return Batch(batch_id, self._serials[bid], boot, first, last, len(seqs))

    def open_batches(self) -> list[Batch]:
        """Batches cut but not yet uploaded, oldest first (also those a crash left behind)."""
        return [
            Batch(i, self._serials[b], boot, f, la, n)
            for i, b, boot, f, la, n in self.db.execute(
                "SELECT id, board, boot, first_seq, last_seq, count FROM batches ORDER BY id"
            ).fetchall()
        ]

    def batch_rows(self, batch: Batch) -> list[Row]:
        bid = self._boards[batch.serial]
        return self.db.execute(
            "SELECT seq, t, distance, user, ax, ay, az FROM readings "
            "WHERE board=? AND boot=? AND seq BETWEEN ? AND ? AND batch=? ORDER BY seq",
            (bid, batch.boot, batch.first_seq, batch.last_seq, batch.id),
        ).fetchall()

    def batch_uploaded(self, batch: Batch, objects: int) -> None:
        """The batch's objects are stored and verified: its readings leave the spool."""
        bid = self._boards[batch.serial]
        with self.transaction():
            cur = self.db.execute(
                "DELETE FROM readings WHERE board=? AND boot=? AND seq BETWEEN ? AND ? AND batch=?",
                (bid, batch.boot, batch.first_seq, batch.last_seq, batch.id),
            )
            removed = cur.rowcount
            self.db.execute("DELETE FROM batches WHERE id=?", (batch.id,))
            self._bump("uploaded_readings", removed)
            self._bump("uploaded_objects", objects)
            self._set("last_upload_ms", str(now_ms()))
        self._pending -= removed

    # ---- customer events -------------------------------------------------------------

    def add_customer_event(self, line: str) -> None:
        """Queue one customer landing record; part of the caller's transaction (Customers)."""
        self.db.execute("INSERT INTO customer_events(line, created) VALUES (?, ?)", (line, now_ms()))

    def customer_events(self) -> list[tuple[int, str]]:
        return self.db.execute("SELECT id, line FROM customer_events ORDER BY id").fetchall()

    def customer_event_uploaded(self, event_id: int) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM customer_events WHERE id=?", (event_id,))
            self._bump("uploaded_objects", 1)
            self._set("last_upload_ms", str(now_ms()))

    # ---- meta ------------------------------------------------------------------------

    def _bump(self, key: str, n: int) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ? AS TEXT)",
            (key, str(n), n),
        )

    def _set(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._set(key, value)

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def full(self) -> bool:
        return self._pending >= self.max_readings

    def unbatched(self) -> int:
        return sum(self._unbatched.values())

    def stats(self) -> SpoolStats:
        def count(sql: str) -> int:
            return int(self.db.execute(sql).fetchone()[0])

        last = self.get_meta("last_upload_ms")
        return SpoolStats(
            pending=self._pending,
            batches=count("SELECT COUNT(*) FROM batches"),
            held=count("SELECT COUNT(*) FROM held_readings"),
            customer_events=count("SELECT COUNT(*) FROM customer_events"),
            max_readings=self.max_readings,
            uploaded_readings=int(self.get_meta("uploaded_readings") or 0),
            uploaded_objects=int(self.get_meta("uploaded_objects") or 0),
            last_upload_ms=int(last) if last else None,
        )

    def watermarks(self) -> Iterable[tuple[str, int, int]]:
        for (bid, boot), seq in sorted(self._watermarks.items()):
            yield self._serials[bid], boot, seq

    def close(self) -> None:
        self.db.close()
