"""One writer at a time per lake: the lock `stedi pipeline run` and `erase` hold while they write.

Two writers on one lake break it: the second reads version folders the first one's commit
deletes.  So every writer takes the lake's lock first, before it reads the state, and a second
writer stops at once with :class:`~stedi.errors.LakeBusyError` (exit 4) naming the holder.

* A folder lake: ``fcntl.flock`` on ``_pipeline/lock/writer.lock``.  The kernel drops the lock
  when its holder exits, however it exits (a kill included), so a killed run leaves nothing to
  clean up; the holder's details are written next to it, in ``writer.json``, for the message.
* An S3 lake: a lease object, ``_pipeline/lock/writer.json``, created with a conditional put
  (``If-None-Match: *``: S3 answers 412 Precondition Failed when the key exists) and renewed
  with ``If-Match: <its ETag>`` while the run lasts.  A lease is stale when it was not renewed
  within its time to live (judged on S3's own clock: its ``Last-Modified`` against the ``Date``
  of the response) or when it names a process of this host that no longer exists; a stale
  lease is taken over with ``If-Match`` on the ETag that was read, so of two writers taking
  it over at once only one wins.  See "Conditional writes" in the Amazon S3 User Guide
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html) and the
  ``IfNoneMatch`` / ``IfMatch`` members of ``PutObjectRequest`` in botocore's S3 model.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from types import TracebackType

from stedi.errors import LakeBusyError, PermanentError
from stedi.lake import FolderLake, LakeError, S3Lake

log = logging.getLogger(__name__)

LOCK_FOLDER = "_pipeline/lock/"
LOCK_FILE = LOCK_FOLDER + "writer.lock"
HOLDER_KEY = LOCK_FOLDER + "writer.json"
#: An S3 lease not renewed for this long belongs to a run that died.
LEASE_SECONDS = 120.0


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lake's writer lock: what the second writer is told."""

    run_id: str
    host: str
    pid: int
    started_at: float  # epoch seconds
    command: str = "run"
    lease_seconds: float = LEASE_SECONDS

    @classmethod
    def me(cls, run_id: str, command: str) -> LockHolder:
        return cls(run_id, socket.gethostname(), os.getpid(), time.time(), command)

    @classmethod
    def from_json(cls, raw: bytes) -> LockHolder | None:
        try:
            data = json.loads(raw)
            return cls(str(data["run_id"]), str(data["host"]), int(data["pid"]), float(data["started_at"]),
                       str(data.get("command", "run")), float(data.get("lease_seconds", LEASE_SECONDS)))
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: a writer killed mid-write of this small file

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    def describe(self) -> str:
        started = datetime.fromtimestamp(self.started_at).astimezone().isoformat(timespec="seconds")
        return f"{self.command} {self.run_id}, host {self.host}, pid {self.pid}, started at {started}"

    def dead_here(self) -> bool:
        """It names a process of this host that no longer exists."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, someone else's
        return False


def busy(lake_url: str, holder: LockHolder | None) -> LakeBusyError:
    who = holder.describe() if holder is not None else "details unknown"
    return LakeBusyError(f"another run ({who}) holds this lake ({lake_url})",
                         hint="wait for it to finish; one writer at a time per lake (docs/pipeline.md)")


class FolderLock:
    """The writer lock of a folder lake (an OS file lock)."""

    def __init__(self, lake: FolderLake, holder: LockHolder):
        self.lake = lake
        self.holder = holder
        self._fd: int | None = None

    def acquire(self) -> None:
        path = self.lake.path(LOCK_FILE)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a lake this user may not write: no run could write it either
            raise PermanentError(f"cannot create the writer lock {path}: {exc.strerror or exc}",
                                 hint="check that you may write to the lake folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise busy(self.lake.url, self._read_holder()) from None
        self._fd = fd
        self._write_holder()

    def _read_holder(self) -> LockHolder | None:
        try:
            return LockHolder.from_json(self.lake.path(HOLDER_KEY).read_bytes())
        except FileNotFoundError:
            return None

    def _write_holder(self) -> None:
        self.lake.put(HOLDER_KEY, self.holder.to_json())

    def update(self, run_id: str) -> None:
        self.holder = replace(self.holder, run_id=run_id)
        self._write_holder()

    def ensure_held(self) -> None:
        if self._fd is None:
            raise busy(self.lake.url, self._read_holder())

    def release(self) -> None:
        if self._fd is None:
            return
        # The details go first: once unlocked, the next writer writes its own.
        self.lake.delete(HOLDER_KEY)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _error_code(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


class S3Lease:
    """The writer lock of an S3 lake (a lease object taken and renewed with conditional puts)."""

    #: How often a held lease is renewed, as a share of its time to live.
    RENEW_SHARE = 0.25

    def __init__(self, lake: S3Lake, holder: LockHolder, encryption: dict[str, str] | None = None):
        self.lake = lake
        self.holder = holder
        self.key = lake.prefix + HOLDER_KEY
        #: ServerSideEncryption / SSEKMSKeyId of the command's --sse: a bucket may refuse plain puts.
        self.encryption = encryption or {}
        self._etag: str | None = None
        #: Set when a renewal found the lease another writer's (``_taken_by``: who, if readable).
        self._lost = False
        self._taken_by: LockHolder | None = None
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _put(self, **condition: str) -> str:
        resp = self.lake.client.put_object(Bucket=self.lake.bucket, Key=self.key, Body=self.holder.to_json(),
                                           ContentType="application/json", **self.encryption, **condition)
        return str(resp["ETag"])

    def _read(self) -> tuple[LockHolder | None, str, bool] | None:
        """The current lease: holder, ETag and whether it is stale; None when there is none."""
        from botocore.exceptions import ClientError

        try:
            resp = self.lake.client.get_object(Bucket=self.lake.bucket, Key=self.key)
        except ClientError as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        holder = LockHolder.from_json(resp["Body"].read())
        date = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        now = parsedate_to_datetime(date).timestamp() if date else time.time()
        age = now - resp["LastModified"].timestamp()
        ttl = holder.lease_seconds if holder is not None else LEASE_SECONDS
        stale = age > ttl or (holder is not None and holder.dead_here())
        return holder, str(resp["ETag"]), stale

    def acquire(self) -> None:
        from botocore.exceptions import ClientError, NoCredentialsError

        for _attempt in range(5):
            try:
                self._etag = self._put(IfNoneMatch="*")
                break
            except NoCredentialsError as exc:
                raise self._permanent(exc) from exc
            except ClientError as exc:
                code = _error_code(exc)
                if code == "ConditionalRequestConflict":  # 409: a concurrent put; S3 says retry
                    continue
                if code not in ("PreconditionFailed", "412"):
                    raise self._permanent(exc) from exc
            try:
                current = self._read()
            except ClientError as exc:
                raise self._permanent(exc) from exc
            if current is None:
                continue  # released between our put and our read: try again
            holder, etag, stale = current
            if not stale:
                raise busy(self.lake.url, holder)
            log.warning("taking over the stale writer lease of %s (%s)", self.lake.url,
                        holder.describe() if holder is not None else "unreadable")
            try:
                self._etag = self._put(IfMatch=etag)
                break
            except ClientError as exc:
                if _error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    raise busy(self.lake.url, (self._read() or (None, "", False))[0]) from None
                raise self._permanent(exc) from exc
        else:
            raise busy(self.lake.url, None)
        self._renewer = threading.Thread(target=self._renew_loop, name="stedi-lake-lease", daemon=True)
        self._renewer.start()

    def _permanent(self, exc: Exception) -> PermanentError:
        return PermanentError(f"cannot take the writer lease {self.lake.url}/{HOLDER_KEY}: {exc}",
                              hint="check the bucket name and that your credentials may write to it")

    def renew(self) -> None:
        """Extend the lease (a put that succeeds only if it is still ours); raises if it is not."""
        from botocore.exceptions import ClientError

        with self._guard:
            if self._lost or self._etag is None:
                raise busy(self.lake.url, self._taken_by)
            try:
                self._etag = self._put(IfMatch=self._etag)
            except ClientError as exc:
                if _error_code(exc) not in ("PreconditionFailed", "412"):
                    raise
                current = self._read()
                self._lost, self._taken_by = True, current[0] if current is not None else None
                raise busy(self.lake.url, self._taken_by) from None

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.holder.lease_seconds * self.RENEW_SHARE):
            try:
                self.renew()
            except LakeBusyError:
                log.error("the writer lease of %s was taken over by another writer: this run will not commit",
                          self.lake.url)
                return
            except Exception as exc:  # a network hiccup: the next renewal may succeed
                log.warning("renewing the writer lease of %s failed: %s", self.lake.url, exc)

    def update(self, run_id: str) -> None:
        self.holder = replace(self.holder, run_id=run_id)
        self.renew()

    def ensure_held(self) -> None:
        """Called just before a commit: renew now, so a lease taken over stops the commit."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.renew()
        except (BotoCoreError, ClientError) as exc:
            # Not known to be ours any more: the commit must not go ahead; the state stays as it was.
            raise LakeError(f"could not renew the writer lease of {self.lake.url} before the commit ({exc}); "
                            "nothing was switched: run again") from exc

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        with self._guard:
            if self._etag is None or self._lost:
                return
            from botocore.exceptions import ClientError

            try:
                # Only our own lease: If-Match on DeleteObject (botocore's DeleteObjectRequest.IfMatch).
                self.lake.client.delete_object(Bucket=self.lake.bucket, Key=self.key, IfMatch=self._etag)
            except ClientError as exc:
                log.warning("could not release the writer lease of %s (%s); it expires in %.0fs",
                            self.lake.url, exc, self.holder.lease_seconds)
            self._etag = None


WriterLock = FolderLock | S3Lease


class writer_lock:  # noqa: N801 - used as a context manager, like open()
    """``with writer_lock(lake, run_id, "run") as lock:`` holds the lake's writer lock."""

    def __init__(self, lake: FolderLake | S3Lake, run_id: str, command: str, *,
                 lease_seconds: float = LEASE_SECONDS, sse: str | None = None, kms_key_id: str | None = None):
        holder = replace(LockHolder.me(run_id, command), lease_seconds=lease_seconds)
        encryption = {"ServerSideEncryption": sse} if sse else {}
        if sse and kms_key_id:
            encryption["SSEKMSKeyId"] = kms_key_id
        self.lock: WriterLock = (FolderLock(lake, holder) if isinstance(lake, FolderLake)
                                 else S3Lease(lake, holder, encryption))

    def __enter__(self) -> WriterLock:
        self.lock.acquire()
        return self.lock

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.lock.release()


def current_writer(lake: FolderLake | S3Lake) -> LockHolder | None:
    """Who holds the lake's writer lock now, if anyone (for ``stedi pipeline status``); takes nothing."""
    if isinstance(lake, S3Lake):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            current = S3Lease(lake, LockHolder.me("", "status"))._read()
        except (BotoCoreError, ClientError) as exc:  # status still shows the rest
            log.warning("cannot read the writer lease of %s: %s", lake.url, exc)
            return None
        return current[0] if current is not None and not current[2] else None
    path = lake.path(LOCK_FILE)
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return FolderLock(lake, LockHolder.me("", "status"))._read_holder()
    finally:
        os.close(fd)  # closing drops the shared lock, if it was taken
    return None


__all__ = ["current_writer", "HOLDER_KEY", "LOCK_FOLDER", "LockHolder", "WriterLock", "busy", "writer_lock"]
