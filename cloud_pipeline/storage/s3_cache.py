"""S3 lakes from a laptop: the pipeline runs on a local cache of the lake and publishes back.

Spark here has no S3 connector, so an ``s3://bucket/prefix`` lake is mirrored, as far as a
command needs it, into a local folder lake (the *cache*), and the unchanged runner works on
that folder.  Objects are fetched with boto3 only when their ETag changed since they were
cached (a small index remembers key -> ETag, size and the local file's mtime); objects deleted
in S3 vanish from the cache.

A run publishes back in an order that never shows a reader a half-written zone:

1. every new table version folder ``<entity>/<zone>/v-<run>/`` and every new staging and
   quarantine batch is uploaded (each put is MD5-verified by S3);
2. the state file ``_pipeline/state/pipeline.json`` is replaced: the commit point;
3. each table's ``_CURRENT`` pointer is replaced;
4. versions and batches the state no longer names are deleted (also the orphans a killed
   publish left behind).

Readers (``stedi query``, Athena locations from ``stedi pipeline ddl``, Glue) follow the state
or the pointers, so until step 2 they see the previous run, after it the new one.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from cloud_pipeline.storage.state import HELD_BACK_PREFIX, STATE_KEY, PipelineState, batch_names
from cloud_pipeline.storage.store import (
    POINTER_NAME,
    ZONE_TABLES,
    PipelineStore,
    ignored_landing_file,
    read_as_landing,
    unnamed,
)
from stedi.contract import (
    LANDING_TABLES,
    QUARANTINE_FOLDER,
    RUNS_FOLDER,
    STAGING_FOLDER,
    STATE_FOLDER,
    TABLES_BY_NAME,
    WARNINGS_FOLDER,
)
from stedi.lake import FolderLake, LakeError, LakeObject, S3Lake, open_lake
from stedi.settings import default_cache
from stedi.tools import write_atomically

log = logging.getLogger(__name__)

CACHE_ENV = "STEDI_CACHE"
INDEX_NAME = "index.json"
#: Parallel S3 requests: small objects are latency-bound, not bandwidth-bound.
WORKERS = 8
SSE_VALUES = ("AES256", "aws:kms")

#: What a command needs from the lake: the state and run records (status); plus landing, the
#: current table versions and quarantine (query); plus the staging batches (run, erase).
Need = Literal["status", "query", "run"]


def cache_folder(lake: S3Lake, root: Path | None = None) -> Path:
    """``<root>/<bucket>/<prefix, readable>-<hash of prefix>``: one cache per lake, never shared."""
    prefix = lake.prefix.strip("/")
    readable = re.sub(r"[^A-Za-z0-9._=-]+", "_", prefix).strip("._") or "_root"
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:8]
    return (root or default_cache()).expanduser().resolve() / lake.bucket / f"{readable}-{digest}"


#: Cache folders this process holds the lock of (held until the process ends).
_LOCKED: dict[Path, int] = {}


def lock_cache(folder: Path) -> None:
    """One process at a time per cache: another command's sync would delete the versions a run
    is writing (they are not in S3's state yet).  Re-entrant within a process."""
    if folder in _LOCKED:
        return
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LakeError(f"the cache {folder} is in use by another stedi command: wait for it, or give this "
                        f"one its own cache with {CACHE_ENV}=<folder>") from None
    _LOCKED[folder] = fd


def check_sse(sse: str | None, kms_key_id: str | None) -> None:
    if sse not in (None, *SSE_VALUES):
        raise LakeError(f"--sse must be AES256 (SSE-S3) or aws:kms, not {sse!r}")
    if kms_key_id and sse != "aws:kms":
        raise LakeError("--kms-key-id needs --sse aws:kms")


@dataclass
class SyncStats:
    """What one command moved between S3 and the cache."""

    fetched: int = 0
    reused: int = 0
    removed: int = 0
    bytes_down: int = 0
    uploaded: int = 0
    bytes_up: int = 0
    #: Objects of an appended version copied inside S3 from the version they were linked from.
    copied: int = 0
    deleted_remote: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _hidden(key: str) -> bool:
    # Spark's checksum files (.part-*.crc) and temp files are the cache's own business.
    return key.rsplit("/", 1)[-1].startswith(".")


def unnamed_objects(lake: S3Lake, state: PipelineState) -> list[str]:
    """Keys of table versions, staging, quarantine and warnings batches (or parts) ``state`` does not name.

    The S3 twin of ``PipelineStore.cleanup``: the same rule (``store.unnamed``), by listing objects
    instead of walking folders.
    """
    folders = [t.folder for t in ZONE_TABLES] + [base for base, _listed in state.batches()] + [HELD_BACK_PREFIX]
    return [o.key for folder in folders for o in lake.list(folder) if unnamed(state, o.key)]


def delete_objects(lake: S3Lake, keys: list[str]) -> int:
    """Delete keys of the lake, a thousand per request; returns how many."""
    for start in range(0, len(keys), 1000):
        chunk = keys[start:start + 1000]
        lake.client.delete_objects(
            Bucket=lake.bucket,
            Delete={"Objects": [{"Key": lake.prefix + k} for k in chunk], "Quiet": True},
        )
    return len(keys)


def _landing_file_of(folder: str) -> Callable[[str], bool]:
    # The files the pipeline reads from a landing folder (see PipelineStore.landing_files).
    return lambda key: read_as_landing(folder, key)


class S3Cache:
    """A local folder lake mirroring the parts of one S3 lake that a command needs."""

    def __init__(self, remote: S3Lake, root: Path | None = None, *, sse: str | None = None,
                 kms_key_id: str | None = None):
        check_sse(sse, kms_key_id)
        self.remote = remote
        self.folder = cache_folder(remote, root)
        (self.folder / "lake").mkdir(parents=True, exist_ok=True)
        lock_cache(self.folder)
        self.local = FolderLake(self.folder / "lake")
        self.index_path = self.folder / INDEX_NAME
        self.sse = sse
        self.kms_key_id = kms_key_id
        self.stats = SyncStats()
        self.index: dict[str, dict[str, Any]] = {}
        if self.index_path.is_file():
            try:
                self.index = json.loads(self.index_path.read_text())
            except ValueError:
                log.warning("cache index %s is unreadable: every object is fetched again", self.index_path)

    # --- the index -------------------------------------------------------------------------

    def _stat(self, key: str) -> os.stat_result | None:
        try:
            return self.local.path(key).stat()
        except FileNotFoundError:
            return None

    def fresh(self, key: str, etag: str) -> bool:
        """The cached copy is the S3 object with this ETag and nobody changed it locally since."""
        entry, st = self.index.get(key), self._stat(key)
        return (entry is not None and st is not None and entry["etag"] == etag
                and entry["size"] == st.st_size and entry["mtime_ns"] == st.st_mtime_ns)

    def remember(self, key: str, etag: str) -> None:
        st = self._stat(key)
        if st is not None:
            self.index[key] = {"etag": etag, "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def save_index(self) -> None:
        self.index = {k: v for k, v in self.index.items() if self._stat(k) is not None}
        write_atomically(self.index_path, json.dumps(self.index, sort_keys=True))

    def _drop_local(self, key: str) -> None:
        path = self.local.path(key)
        path.unlink(missing_ok=True)
        # A stale checksum next to a replaced file would make Spark refuse to read it.
        path.with_name(f".{path.name}.crc").unlink(missing_ok=True)
        self.index.pop(key, None)

    # --- S3 -> cache -----------------------------------------------------------------------

    def mirror(self, prefix: str, keep: Callable[[str], bool] = lambda key: True) -> None:
        """Make the cache's ``prefix`` equal S3's: fetch new or changed objects, drop deleted ones."""
        remote = {o.key: o for o in self.remote.list(prefix) if keep(o.key) and not _hidden(o.key)}
        local = {o.key for o in self.local.list(prefix) if keep(o.key) and not _hidden(o.key)}
        local |= {k for k in self.index if k.startswith(prefix)}
        for key in sorted(local - remote.keys()):
            self._drop_local(key)
            self.stats.removed += 1
        todo = [o for o in remote.values() if not self.fresh(o.key, o.etag)]
        self.stats.reused += len(remote) - len(todo)

        def fetch(key: str) -> int:
            data = self.remote.get(key)
            self._drop_local(key)
            self.local.put(key, data)
            return len(data)

        with ThreadPoolExecutor(WORKERS) as pool:
            for obj, size in zip(todo, pool.map(fetch, [o.key for o in todo]), strict=True):
                self.remember(obj.key, obj.etag)
                self.stats.fetched += 1
                self.stats.bytes_down += size

    def pull(self, need: Need) -> PipelineState:
        """Bring what ``need`` reads into the cache; returns the lake's committed state."""
        started = time.monotonic()
        plain = PipelineStore(self.local)
        self.mirror(STATE_FOLDER)
        state = plain.load_state()
        if need in ("query", "run"):
            for table in LANDING_TABLES:
                self.mirror(table.folder, _landing_file_of(table.folder))
            for name, current in state.tables.items():
                self.mirror(f"{TABLES_BY_NAME[name].folder}{current.version}/")
            for base, listed in ((QUARANTINE_FOLDER, state.quarantine), (WARNINGS_FOLDER, state.warnings)):
                for batch in sorted(batch_names(listed)):
                    self.mirror(f"{base}{batch}/")
        if need == "run":
            for batch in sorted(batch_names(state.staging)):
                self.mirror(f"{STAGING_FOLDER}{batch}/")
        if need == "status":
            self.mirror(RUNS_FOLDER)
        # Versions and batches the committed state does not name (a local run that was never
        # published, an older version) go: the cache holds the lake as S3 readers see it.
        plain.cleanup(state)
        self.save_index()
        s = self.stats
        log.info("S3 lake %s -> cache %s (%s): fetched %d object(s), %d bytes; reused %d; removed %d; %.1fs",
                 self.remote.url, self.local.root, need, s.fetched, s.bytes_down, s.reused, s.removed,
                 time.monotonic() - started)
        return state

    # --- cache -> S3 -----------------------------------------------------------------------

    def _put_kwargs(self) -> dict[str, Any]:
        return {"sse": self.sse, "kms_key_id": self.kms_key_id}

    def upload(self, keys: Iterable[str], sse: dict[str, dict[str, Any]] | None = None) -> dict[str, str]:
        """Upload cached files to the same keys in S3 (verified puts); returns key -> ETag."""
        keys = list(keys)

        def put(key: str) -> tuple[str, int]:
            data = self.local.get(key)
            args = (sse or {}).get(key) or self._put_kwargs()
            return self.remote.put(key, data, **args).etag, len(data)

        done: dict[str, str] = {}
        with ThreadPoolExecutor(WORKERS) as pool:
            for key, (etag, size) in zip(keys, pool.map(put, keys), strict=True):
                done[key] = etag
                self.stats.uploaded += 1
                self.stats.bytes_up += size
        return done

    def copy_linked(self, pairs: list[tuple[str, str]]) -> dict[str, str]:
        """Copy objects inside S3, (new key, key already in S3) each, without moving their bytes
        through this machine (CopyObject); returns key -> ETag.

        A copy is encrypted as ``--sse`` says, else as the bucket's default, as a put would be
        (CopyObject does not carry the source's encryption over: AWS S3 API reference, CopyObject).
        """
        def copy(pair: tuple[str, str]) -> str:
            key, origin = pair
            args: dict[str, Any] = {"Bucket": self.remote.bucket, "Key": self.remote.prefix + key,
                                    "CopySource": {"Bucket": self.remote.bucket, "Key": self.remote.prefix + origin}}
            if self.sse:
                args["ServerSideEncryption"] = self.sse
                if self.kms_key_id:
                    args["SSEKMSKeyId"] = self.kms_key_id
            return str(self.remote.client.copy_object(**args)["CopyObjectResult"]["ETag"]).strip('"')

        done: dict[str, str] = {}
        with ThreadPoolExecutor(WORKERS) as pool:
            for (key, _origin), etag in zip(pairs, pool.map(copy, pairs), strict=True):
                done[key] = etag
                self.stats.copied += 1
        return done

    def _published_files(self, state: PipelineState) -> dict[tuple[int, int], str]:
        """The files of ``state``'s table versions that S3 holds, by (device, inode): a file of a
        new version with one of these is a hard link of an object S3 already has."""
        out = {}
        for name, table in state.tables.items():
            for key in self._files(f"{TABLES_BY_NAME[name].folder}{table.version}/"):
                st = self._stat(key)
                if st is not None and key in self.index:
                    out[(st.st_dev, st.st_ino)] = key
        return out

    def _files(self, prefix: str) -> list[str]:
        return [o.key for o in self.local.list(prefix) if not _hidden(o.key)]

    def publish(self, before: PipelineState, after: PipelineState,
                before_switch: Callable[[], None] | None = None) -> dict[str, str]:
        """Publish a run committed locally as ``after`` over S3's ``before``; returns key -> ETag."""
        started = time.monotonic()
        versions = [
            f"{TABLES_BY_NAME[name].folder}{table.version}/"
            for name, table in sorted(after.tables.items())
            if (old := before.tables.get(name)) is None or old.version != table.version
        ]
        folders = list(versions)
        for (base, old_batches), (_same, new_batches) in zip(before.batches(), after.batches(), strict=True):
            folders += [f"{base}{b}/" for b in sorted(batch_names(new_batches) - batch_names(old_batches))]
        from botocore.exceptions import BotoCoreError, ClientError

        run = after.last_run
        for folder in versions:
            # Spark writes _SUCCESS last: without it the version is not whole (a killed write, or
            # a folder another command's sync removed).
            if not self.local.exists(f"{folder}_SUCCESS"):
                raise LakeError(f"{folder} is incomplete in the cache {self.local.root}: not publishing run {run}")
        # An appended version links the previous version's files (PipelineStore.append_table): those
        # are copied inside S3 from the object they were published as; only new files are put.
        published = self._published_files(before)
        puts, copies = [], []
        for key in (k for folder in folders for k in self._files(folder)):
            st = self._stat(key)
            origin = published.get((st.st_dev, st.st_ino)) if st is not None else None
            if origin is not None and origin != key:
                copies.append((key, origin))
            else:
                puts.append(key)
        if after.held_back is not None and after.held_back != before.held_back:
            puts.append(after.held_back)  # named by the state: uploaded before the switch
        try:
            uploaded = self.upload(puts)
            uploaded.update(self.copy_linked(copies))
        except (BotoCoreError, ClientError, LakeError) as exc:
            raise LakeError(f"publishing run {run} to {self.remote.url} failed before the switch ({exc}); "
                            "readers still see the previous run, the next run removes what was uploaded") from exc
        log.info("published %d new version/batch folder(s): %d object(s) put, %d copied inside S3", len(folders),
                 len(puts), len(copies))
        if before_switch is not None:
            before_switch()
        # The commit point: from this put on, readers of the state see the new run.
        try:
            uploaded[STATE_KEY] = self.remote.put(STATE_KEY, after.to_json(), **self._put_kwargs()).etag
        except (BotoCoreError, ClientError, LakeError) as exc:
            raise LakeError(f"switching {self.remote.url} to run {run} failed ({exc}); if the state "
                            "was not replaced readers still see the previous run; run again") from exc
        try:
            for name, table in sorted(after.tables.items()):
                key = TABLES_BY_NAME[name].folder + POINTER_NAME
                uploaded[key] = self.remote.put(key, (table.version + "\n").encode(), **self._put_kwargs()).etag
            self.stats.uploaded += 1 + len(after.tables)
            self.stats.deleted_remote += self.cleanup_remote(after)
        except (BotoCoreError, ClientError, LakeError) as exc:
            raise LakeError(f"run {run} is committed in {self.remote.url} (state switched), but updating the "
                            f"_CURRENT pointers or deleting old versions failed ({exc}); the next run finishes it") from exc
        log.info("published to %s in %.1fs: %d object(s) up, %d bytes; %d old object(s) deleted",
                 self.remote.url, time.monotonic() - started, self.stats.uploaded, self.stats.bytes_up,
                 self.stats.deleted_remote)
        return uploaded

    def _delete_remote(self, keys: list[str]) -> int:
        return delete_objects(self.remote, keys)

    def cleanup_remote(self, state: PipelineState) -> int:
        """Delete from S3 every table version, staging and quarantine batch ``state`` does not name.

        Runs only after the switch, so it also removes what a killed publish left behind.
        """
        doomed = unnamed_objects(self.remote, state)
        if doomed:
            log.info("deleting %d object(s) of old or orphaned versions and batches from %s", len(doomed),
                     self.remote.url)
        return self._delete_remote(doomed)

    def push_landing(self) -> tuple[int, int]:
        """Send landing files changed or deleted in the cache (an erase) back to S3.

        A rewritten object keeps the encryption it had, unless ``--sse`` asks for another.
        Returns (rewritten, deleted).
        """
        changed, deleted = [], []
        for table in LANDING_TABLES:
            local = {o.key for o in self.local.list(table.folder) if not _hidden(o.key)}
            for key in sorted(local | {k for k in self.index if k.startswith(table.folder)}):
                entry, st = self.index.get(key), self._stat(key)
                if st is None:
                    deleted.append(key)
                elif entry is None or (entry["size"], entry["mtime_ns"]) != (st.st_size, st.st_mtime_ns):
                    changed.append(key)
        encryption: dict[str, dict[str, Any]] = {}
        for key in changed:
            if self.sse is None and self.remote.exists(key):
                head = self.remote.client.head_object(Bucket=self.remote.bucket, Key=self.remote.prefix + key)
                encryption[key] = {"sse": head.get("ServerSideEncryption"), "kms_key_id": head.get("SSEKMSKeyId")}
        for key, etag in self.upload(changed, encryption).items():
            self.remember(key, etag)
        self.stats.deleted_remote += self._delete_remote(deleted)
        for key in deleted:
            self.index.pop(key, None)
        self.save_index()
        log.info("landing changes sent to %s: %d object(s) rewritten, %d deleted", self.remote.url,
                 len(changed), len(deleted))
        return len(changed), len(deleted)


class CachedStore(PipelineStore):
    """A pipeline store on the cache of an S3 lake: runs locally, commits by publishing to S3.

    ``commit`` publishes first (versions, then the state, then the pointers) and only then
    commits the cache, so the cache never runs ahead of S3; ``save_record`` uploads every record.
    """

    def __init__(self, cache: S3Cache, need: Need = "run"):
        super().__init__(cache.local)
        self.cache = cache
        self.need = need
        self.base_state = cache.pull(need)
        #: Called after the new folders are uploaded, before the switch (tests inject failures).
        self.before_switch: Callable[[], None] | None = None

    @property
    def url(self) -> str:
        return self.cache.remote.url

    def landing_files(self, entity: str) -> list[LakeObject]:
        # S3's ETags, not the cached files' mtimes: the state then names landing files the same
        # way whichever cache (or laptop) ran last, and a fresh cache re-stages nothing.
        out = []
        for obj in super().landing_files(entity):
            entry = self.cache.index.get(obj.key)
            fresh = entry is not None and self.cache.fresh(obj.key, entry["etag"])
            out.append(LakeObject(obj.key, obj.size, entry["etag"]) if entry is not None and fresh else obj)
        return out

    def ignored_landing_files(self) -> list[str]:
        # The cache holds only the files runs read: the others are listed in S3.
        folders = [t.folder for t in LANDING_TABLES]
        return [o.key for f in folders for o in self.cache.remote.list(f) if ignored_landing_file(f, o.key)]

    def commit(self, state: PipelineState) -> None:
        if self.need != "run":
            raise LakeError(f"this view of {self.url} was synced for {self.need}, not for a run")
        self.check_writer()
        uploaded = self.cache.publish(self.base_state, state, self.before_switch)
        super().commit(state)
        for key, etag in uploaded.items():
            self.cache.remember(key, etag)
        self.cache.save_index()
        self.base_state = copy.deepcopy(state)

    def save_record(self, name: str, record: dict[str, Any]) -> str:
        record = {**record, "lake": self.url, "cache": str(self.root), "s3": self.cache.stats.as_dict()}
        key = super().save_record(name, record)
        for k, etag in self.cache.upload([key]).items():
            self.cache.remember(k, etag)
        self.cache.save_index()
        return key


def open_store(url: str, need: Need = "run", *, cache_root: Path | None = None, sse: str | None = None,
               kms_key_id: str | None = None) -> PipelineStore:
    """The pipeline store of a lake: a folder lake as it is, an S3 lake through its cache."""
    lake = open_lake(url)
    if isinstance(lake, FolderLake):
        if sse or kms_key_id:
            log.info("--sse applies to S3 lakes only; %s is a folder", lake.url)
        return PipelineStore(lake)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return CachedStore(S3Cache(lake, cache_root, sse=sse, kms_key_id=kms_key_id), need)
    except (BotoCoreError, ClientError) as exc:
        raise LakeError(f"cannot sync {lake.url} into the local cache: {exc}") from exc
