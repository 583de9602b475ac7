"""Moves spooled readings and customer records to the landing zone.

Batches by size or age, whichever comes first (Data Firehose style).  A batch's
boundaries are written to the spool before its objects are put, its object keys come
from those boundaries, and its readings leave the spool only after every put was
verified (the lake checks MD5), so a retry or a crash at any point can only overwrite
an object with the same bytes.  Transient errors are retried forever with exponential
backoff and full jitter; permanent ones (access denied, no such bucket) stop the
uploader with a clear error while the spool keeps the data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.records import batch_keys, customer_key, encode, render_batch
from gateway.spool import Batch, Spool
from stedi.lake import FolderLake, Lake, S3Lake
from stedi.settings import DEFAULT_BATCH_AGE_S, DEFAULT_BATCH_BYTES

log = logging.getLogger(__name__)

#: Bytes one reading takes in landing (step_trainer line + accelerometer line), used to
#: turn the batch size limit into a reading count before the batch is rendered.
BYTES_PER_READING = 230

#: Structured log event (``extra``: event, state ``begins``/``done``/``failed``, key) around each
#: object put; the fault suite reads it from the JSON log (STEDI_LOG_FORMAT=json) to tell whether a
#: SIGKILL landed while an upload was in flight.  The message's wording is for people and may change.
PUT_EVENT = "put"

#: S3 error codes that no retry can fix (the list of codes and their meaning:
#: https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList).  Credentials
#: that S3 rejects (an unknown key id, a wrong secret, an expired or malformed session token) are
#: among them: the gateway cannot mend them, a person must.
PERMANENT_CODES = frozenset({
    "AccessDenied", "AllAccessDisabled", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "InvalidBucketName", "AccountProblem", "KMS.NotFoundException", "KMS.DisabledException",
    "InvalidArgument", "AuthorizationHeaderMalformed", "ExpiredToken", "InvalidToken", "TokenRefreshRequired",
    "InvalidSecurity", "CredentialsNotSupported", "NotSignedUp", "InvalidPayer", "RequestTimeTooSkewed",
})

#: botocore's exceptions for credentials it could not find or load before any request was sent
#: (botocore/exceptions.py); retrying finds the same nothing.
CREDENTIAL_EXCEPTIONS = frozenset({
    "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "NoAuthTokenError",
    "UnauthorizedSSOTokenError", "SSOTokenLoadError", "TokenRetrievalError", "ProfileNotFound",
})

_CREDENTIAL_FIX = ("give the gateway AWS credentials that may write to the bucket (AWS_PROFILE, or "
                   "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or `aws configure`; docs/iam-policy.json), "
                   "then run `stedi gateway run` again: the spooled readings are uploaded then")

#: What a person does about each permanent error (by S3 error code or botocore exception name).
FIXES = {
    "NoCredentials": _CREDENTIAL_FIX,
    "InvalidAccessKeyId": "S3 does not know this access key id: " + _CREDENTIAL_FIX,
    "SignatureDoesNotMatch": "the secret access key does not match the key id: " + _CREDENTIAL_FIX,
    "ExpiredToken": "the session token expired: refresh the credentials (e.g. `aws sso login`), then run "
                    "`stedi gateway run` again",
    "InvalidToken": "the session token is malformed or invalid: " + _CREDENTIAL_FIX,
    "AccessDenied": "these credentials may not write to this bucket or prefix (or use its KMS key): grant "
                    "the policy in docs/iam-policy.json, or pick the right lake with --lake",
    "NoSuchBucket": "the bucket does not exist: create it, or fix the bucket name in --lake "
                    "(`stedi gateway init --lake s3://BUCKET/PREFIX --rebind`)",
    "InvalidBucketName": "that is not a valid S3 bucket name: fix --lake",
    "RequestTimeTooSkewed": "this machine's clock is too far off: set it right (NTP), then run again",
}


#: Objects of one upload: (landing key, bytes), all stored before the spool lets go of their data.
Objects = list[tuple[str, bytes]]

T = TypeVar("T")


class PermanentUploadError(Exception):
    """An upload failed in a way retrying cannot fix; the spool keeps the data.

    ``fix`` says what a person does about it (None when there is nothing specific to say).
    """

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix


@dataclass(frozen=True)
class Drive:
    """How uploads are driven, so one retry loop serves the service and the blocking commands.

    The service (:meth:`Uploader.run`): puts on the upload thread, backoffs that end early on
    ``stop``, retrying until ``stop``, a recovery said in the log.  A command (register, consent,
    :meth:`Uploader.drain_sync`): puts and backoffs on the caller's thread, at most
    ``max_attempts`` tries (None: until it works); the command reports the outcome itself.
    """

    put: Callable[[Objects], Awaitable[None]]
    sleep: Callable[[float], Awaitable[None]]
    stop: asyncio.Event | None = None
    max_attempts: int | None = None
    log_recovery: bool = False

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()


def run_blocking(work: Coroutine[Any, Any, T]) -> T:
    """Run an upload coroutine on a blocking :class:`Drive` (whose awaits never suspend) to its end.

    No event loop: the same upload code as the service's runs on the caller's thread like plain
    calls, so a command's Ctrl-C interrupts a put or a backoff at once, and a caller that has a
    loop running may still call the blocking API.
    """
    try:
        work.send(None)
    except StopIteration as done:
        return done.value
    work.close()
    raise RuntimeError("an upload coroutine suspended: it needs an event loop (an asynchronous Drive)")


@dataclass
class UploadSettings:
    batch_bytes: int = DEFAULT_BATCH_BYTES
    batch_age_s: float = DEFAULT_BATCH_AGE_S
    gzip: bool = False
    sse: str | None = None  # "AES256" (SSE-S3) or "aws:kms"
    kms_key_id: str | None = None
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0

    @property
    def batch_readings(self) -> int:
        return max(1, self.batch_bytes // BYTES_PER_READING)


def open_gateway_lake(url: str) -> FolderLake | S3Lake:
    """The lake at ``url``; for S3, a client with short timeouts so an outage is noticed fast."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.scheme != "s3":
        from stedi.lake import open_lake

        return open_lake(url)
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"}),
    )
    return S3Lake(parsed.netloc, parsed.path, client=client)


def error_code(exc: BaseException) -> str:
    """S3's error code of a failed request, ``NoCredentials`` when botocore found no usable
    credentials, else the exception's class name."""
    if type(exc).__name__ in CREDENTIAL_EXCEPTIONS:
        return "NoCredentials"
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "")) or type(exc).__name__
    return type(exc).__name__


def fix_for(exc: BaseException) -> str | None:
    code = error_code(exc)
    return FIXES.get(code) or (FIXES["AccessDenied"] if code.startswith("KMS.") else None)


def classify(exc: BaseException) -> bool:
    """True when ``exc`` is permanent (retrying cannot help)."""
    if isinstance(exc, PermissionError):
        return True
    if type(exc).__name__ in CREDENTIAL_EXCEPTIONS:
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        if code in PERMANENT_CODES or code.startswith("KMS."):
            return True
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status in (401, 403):
            return True
    return False


def describe(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', type(exc).__name__)}: {err.get('Message', exc)}"
    return f"{type(exc).__name__}: {exc}"


class Uploader:
    """Cuts batches in the spool and puts them into the lake.

    Spool work happens on the caller's thread (the spool's single connection); only the
    network put may run on another thread, so ``prepare``/``send``/``finish`` are split.
    """

    def __init__(self, spool: Spool, lake: Lake, settings: UploadSettings | None = None):
        self.spool = spool
        self.lake = lake
        self.settings = settings or UploadSettings()
        self.last_error: str | None = None
        self.stopped_error: str | None = None
        self.retries = 0
        # Its own thread for puts (not asyncio's default executor), so that an immediate exit
        # need not wait for a put in flight; the spool still holds that batch.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stedi-upload")

    # ---- the three steps of one batch ------------------------------------------------

    def prepare(self, batch: Batch) -> Objects:
        rows = self.spool.batch_rows(batch)
        if len(rows) != batch.count:
            raise RuntimeError(f"spool holds {len(rows)} readings of batch {batch.id}, expected {batch.count}")
        steps, accel = render_batch(batch, rows)
        step_key, accel_key = batch_keys(batch, gzipped=self.settings.gzip)
        return [(step_key, encode(steps, self.settings.gzip)), (accel_key, encode(accel, self.settings.gzip))]

    def send(self, objects: Objects) -> None:
        for key, data in objects:
            log.debug("put begins: %s", key, extra={"event": PUT_EVENT, "state": "begins", "key": key})
            try:
                self.lake.put(key, data, sse=self.settings.sse, kms_key_id=self.settings.kms_key_id)
            except Exception:
                log.debug("put failed: %s", key, extra={"event": PUT_EVENT, "state": "failed", "key": key})
                raise
            log.debug("put done: %s", key, extra={"event": PUT_EVENT, "state": "done", "key": key})

    def finish(self, batch: Batch, objects: int) -> None:
        self.spool.batch_uploaded(batch, objects)
        log.debug("uploaded batch %d: %s boot %d seq %d-%d (%d readings)", batch.id, batch.serial,
                  batch.boot, batch.first_seq, batch.last_seq, batch.count)

    # ---- the one retry loop ----------------------------------------------------------

    async def _send_retrying(self, objects: Objects, what: str, drive: Drive) -> bool:
        """Put ``objects`` until all are stored (True) or ``drive.stop`` is set (False).

        A permanent error raises :class:`PermanentUploadError`; a transient one is retried after
        a backoff (exponential, full jitter), or raised once ``drive.max_attempts`` tries failed.
        """
        attempt = 0
        while not drive.stopped:
            try:
                await drive.put(objects)
            except Exception as exc:  # classified below: permanent stops, anything else retries
                self._failed(exc, what)
                if drive.max_attempts is not None and attempt + 1 >= drive.max_attempts:
                    raise
                attempt += 1
                await drive.sleep(self._retry_delay(attempt, what))
                continue
            if drive.log_recovery and self.last_error:
                log.info("upload recovered after %d retries", attempt)
            self.last_error = None
            return True
        return False

    def _failed(self, exc: Exception, what: str) -> None:
        """Record a failed put; a permanent error (AccessDenied, NoSuchBucket) stops uploading."""
        if classify(exc):
            self.stopped_error = f"{what}: {describe(exc)}"
            raise PermanentUploadError(
                f"upload to {self.lake.url} stopped: {describe(exc)}; the spool keeps the data", fix_for(exc)
            ) from exc
        self.last_error = describe(exc)

    def _retry_delay(self, attempt: int, what: str) -> float:
        """Count retry number ``attempt`` (from 1), log it and say how long to wait before it."""
        delay = self.backoff(attempt - 1)
        self.retries += 1
        log.warning("%s failed (%s); retry %d in %.1fs", what, self.last_error, attempt, delay)
        return delay

    def backoff(self, attempt: int) -> float:
        # Full jitter: spread retries of many gateways over the whole window.
        return random.uniform(0, min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2**attempt))

    # ---- what is uploaded: customer records, then batches ----------------------------

    async def _upload_customer_records(self, drive: Drive) -> int | None:
        """Every customer record waiting in the spool, oldest first, each leaving the spool once
        stored.  Returns how many were uploaded, or None when ``drive.stop`` came first."""
        done = 0
        for event_id, line in self.spool.customer_events():
            if drive.stopped:
                return None
            last_update = int(json.loads(line)["lastUpdateDate"])
            key = customer_key(line, last_update, gzipped=self.settings.gzip)
            data = encode(line.encode() + b"\n", self.settings.gzip)
            if not await self._send_retrying([(key, data)], f"customer record {key}", drive):
                return None
            self.spool.customer_event_uploaded(event_id)
            done += 1
        return done

    async def _upload_batches(self, drive: Drive) -> int | None:
        """Every cut batch, oldest first, each leaving the spool once all its objects are stored.
        Returns the readings uploaded, or None when ``drive.stop`` came first."""
        uploaded = 0
        for batch in self.spool.open_batches():
            if drive.stopped:
                return None
            objects = self.prepare(batch)
            if not await self._send_retrying(objects, f"batch {batch.id}", drive):
                return None
            self.finish(batch, len(objects))
            uploaded += batch.count
        return uploaded

    def cut(self, force: bool = False) -> list[Batch]:
        return self.spool.cut_batches(
            max_count=self.settings.batch_readings, max_age_s=self.settings.batch_age_s, force=force
        )

    # ---- synchronous driving (register/consent commands, benchmark) -----------------

    def _blocking_drive(self, sleep: Callable[[float], Any], max_attempts: int | None = None) -> Drive:
        async def put(objects: Objects) -> None:
            self.send(objects)

        async def pause(delay: float) -> None:
            sleep(delay)

        return Drive(put, pause, max_attempts=max_attempts)

    def upload_customers(self, sleep: Callable[[float], Any] = time.sleep, max_attempts: int | None = None) -> int:
        """Upload every waiting customer record, blocking. Returns how many were uploaded."""
        done = run_blocking(self._upload_customer_records(self._blocking_drive(sleep, max_attempts)))
        assert done is not None  # a blocking drive has no stop
        return done

    def drain_sync(self, force: bool = True, max_attempts: int | None = None) -> int:
        """Cut and upload everything due (all of it when forced), blocking. Returns readings uploaded."""
        self.upload_customers(sleep=time.sleep)
        self.cut(force=force)
        uploaded = run_blocking(self._upload_batches(self._blocking_drive(time.sleep)))
        assert uploaded is not None  # a blocking drive has no stop
        return uploaded

    # ---- asynchronous driving (the gateway service) ----------------------------------

    async def run(self, stop: asyncio.Event, flush: asyncio.Event, tick_s: float = 0.5) -> None:
        """Upload until ``stop``; when ``flush`` is set, cut everything and drain before returning."""

        async def put(objects: Objects) -> None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.send, objects)

        async def sleep(delay: float) -> None:
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass

        drive = Drive(put, sleep, stop=stop, log_recovery=True)
        while True:
            draining = flush.is_set()
            await self._upload_due(force=draining, drive=drive)
            if draining and self.spool.pending == 0 and not self.spool.customer_events():
                return
            if stop.is_set():
                return
            if not draining:
                try:
                    await asyncio.wait_for(flush.wait(), tick_s)
                except TimeoutError:
                    pass

    async def _upload_due(self, *, force: bool, drive: Drive) -> None:
        if await self._upload_customer_records(drive) is None:
            return
        self.cut(force=force)
        await self._upload_batches(drive)
