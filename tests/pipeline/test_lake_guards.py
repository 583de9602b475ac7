"""The first hour on a folder lake (issue #16): one writer at a time, a lake must exist, erase that
finds nobody changes nothing, and the errors a person causes end in one message and an exit code.

Most of these stop before Spark starts, so they are cheap; the ones that run use the shared session.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cloud_pipeline.storage.lock import (
    HOLDER_KEY,
    LOCK_FILE,
    FolderLock,
    LockHolder,
    current_writer,
    writer_lock,
)
from cloud_pipeline.storage.state import STATE_KEY
from stedi.errors import EXIT_BUSY, EXIT_USAGE, LakeBusyError
from stedi.lake import FolderLake, lake_exists
from tests.parts import run_main
from tests.pipeline.helpers import small_lake


def _files(lake: Path) -> dict[str, int]:
    return {str(p.relative_to(lake)): p.stat().st_mtime_ns for p in lake.rglob("*") if p.is_file()}


# --- one writer per lake ---------------------------------------------------------------------

HOLD = textwrap.dedent("""
    import sys, time
    from cloud_pipeline.storage.lock import writer_lock
    from stedi.lake import FolderLake
    with writer_lock(FolderLake(sys.argv[1]), "20261201T235018123456Z-0001", "run"):
        print("held", flush=True)
        time.sleep(120)
""")


def _holder_process(lake: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lake)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_stops_at_once_and_a_killed_holder_frees_the_lake(
        lake_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    small_lake(lake_dir)
    holder = _holder_process(lake_dir)
    try:
        before = _files(lake_dir)
        started = time.monotonic()
        for argv in (["pipeline", "run", "--lake", str(lake_dir)],
                     ["pipeline", "erase", "--lake", str(lake_dir), "--email", "ann@example.com"]):
            code, _, err = run_main(monkeypatch, capsys, *argv)
            assert code == EXIT_BUSY, err
            assert "another run (run 20261201T235018123456Z-0001, host " in err and f"pid {holder.pid}" in err
            assert "holds this lake" in err
            assert re.search(r"started at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d\)", err)
        assert time.monotonic() - started < 10  # at once: no Spark was started
        # Nothing was written by the refused writers (only the holder's own lock files exist).
        assert _files(lake_dir) == before
        assert current_writer(FolderLake(lake_dir)) is not None
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel dropped the killed holder's lock: its stale details do not block the next writer.
    assert (lake_dir / HOLDER_KEY).is_file()
    assert current_writer(FolderLake(lake_dir)) is None
    with writer_lock(FolderLake(lake_dir), "next", "run") as lock:
        assert isinstance(lock, FolderLock) and lock.holder.run_id == "next"
        assert LockHolder.from_json((lake_dir / HOLDER_KEY).read_bytes()) == lock.holder


def test_two_writers_in_one_process_and_the_lock_released_on_error(lake_dir: Path) -> None:
    lake = FolderLake(lake_dir)
    with pytest.raises(RuntimeError), writer_lock(lake, "first", "run"):
        with pytest.raises(LakeBusyError) as busy:
            with writer_lock(lake, "second", "run"):
                pass
        assert "another run (run first" in str(busy.value) and busy.value.exit_code == EXIT_BUSY
        raise RuntimeError("the run failed")
    # Released on the way out of the failed run: the next writer gets it, and it is a real OS lock.
    with writer_lock(lake, "third", "erase"):
        assert current_writer(lake) is not None and current_writer(lake).run_id == "third"  # type: ignore[union-attr]
    assert not (lake_dir / HOLDER_KEY).exists() and (lake_dir / LOCK_FILE).is_file()


def test_a_lake_where_the_lock_cannot_be_made_is_a_permanent_error(lake_dir: Path) -> None:
    from stedi.errors import PermanentError

    small_lake(lake_dir)
    # A file where the lock's folder should be: mkdir fails for any user, root included.
    (lake_dir / "_pipeline").write_text("not a folder")
    with pytest.raises(PermanentError, match="cannot create the writer lock"):
        with writer_lock(FolderLake(lake_dir), "r", "run"):
            pass


def test_a_commit_without_the_lock_is_refused(lake_dir: Path) -> None:
    from cloud_pipeline.storage.s3_cache import open_store
    from cloud_pipeline.storage.state import PipelineState

    store = open_store(str(lake_dir))
    with writer_lock(store.lake, "mine", "run") as lock:
        store.writer_lock = lock
    # The lock was released (or lost): committing now could overwrite another writer's state.
    with pytest.raises(LakeBusyError):
        store.commit(PipelineState(last_run="x"))
    assert not (lake_dir / STATE_KEY).exists()


# --- a lake must exist -------------------------------------------------------------------------

def test_commands_refuse_a_lake_that_is_not_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STEDI_LAKE", str(tmp_path / "default-lake"))
    missing = tmp_path / "no" / "such"
    some_folder = tmp_path / "not-a-lake"
    (some_folder / "photos").mkdir(parents=True)
    assert not lake_exists(FolderLake(missing)) and not lake_exists(FolderLake(some_folder))
    for where in (missing, some_folder):
        for argv in (["pipeline", "run", "--lake", str(where)],
                     ["pipeline", "status", "--lake", str(where)],
                     ["pipeline", "report", "--lake", str(where), "--out", str(tmp_path / "r.html")],
                     ["pipeline", "erase", "--lake", str(where), "--email", "a@example.com"],
                     ["query", "--lake", str(where), "SELECT 1"]):
            code, _, err = run_main(monkeypatch, capsys, *argv)
            assert code == EXIT_USAGE, (argv, err)
            assert f"error: no lake at {where}" in err and f"stedi pipeline run --lake {where} --create" in err
    assert not missing.exists() and sorted(p.name for p in some_folder.iterdir()) == ["photos"]
    assert not (tmp_path / "r.html").exists()


def test_erase_of_nobody_changes_nothing_and_dry_run_lists_what_would_go(
        lake_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    small_lake(lake_dir)
    before = _files(lake_dir)
    code, _, err = run_main(monkeypatch, capsys, "pipeline", "erase", "--lake", str(lake_dir),
                            "--email", "nobody@example.com")
    assert code == EXIT_USAGE and "no line of nobody@example.com in the landing zone" in err
    assert "nothing erased" in err
    code, out, err = run_main(monkeypatch, capsys, "pipeline", "erase", "--lake", str(lake_dir),
                              "--email", "ann@example.com", "--dry-run")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["dry_run"] is True
    assert plan["lines_to_remove"] == {"customer": 2, "accelerometer": 4, "step_trainer": 3}
    assert plan["files_to_rewrite"] == ["customer/landing/c1.json", "accelerometer/landing/a1.json",
                                        "step_trainer/landing/s1.json"]
    # Neither wrote anything: no landing file, no erase record, no run, no lock details left.
    after = _files(lake_dir)
    assert {k: v for k, v in after.items() if not k.startswith("_pipeline/lock/")} == before
