"""The Spark class archive: used when recorded, harmless when missing or stale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloud_pipeline import class_archive
from tests.parts import REPO

_SESSION = (
    "from cloud_pipeline.session import local_session\n"
    "s = local_session()\n"
    "print(s.range(3).count())\n"
    "s.stop()\n"
)


def test_options_name_the_archive_only_once_it_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEDI_CACHE", str(tmp_path / "cache"))
    path = class_archive.archive_path()
    assert path is not None and path.parent == tmp_path / "cache"
    assert class_archive.java_options() == ""
    path.parent.mkdir()
    path.write_bytes(b"x")
    assert class_archive.java_options() == f"-XX:SharedArchiveFile={path} -Xlog:disable"


def test_every_gateway_home_finds_the_same_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Set-up records the archive once per user; a STEDI_HOME (a test's, a second gateway's) must
    # not hide it.
    monkeypatch.delenv("STEDI_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("STEDI_HOME", str(tmp_path / "home-1"))
    first = class_archive.archive_path()
    monkeypatch.setenv("STEDI_HOME", str(tmp_path / "home-2"))
    assert first is not None and class_archive.archive_path() == first
    assert first.parent == tmp_path / "user" / ".stedi" / "cache"


@pytest.mark.slow
def test_a_stale_archive_is_refused_quietly(tmp_path: Path) -> None:
    # A file the JVM cannot use (another JDK's, a truncated one) must neither stop Spark nor print
    # anything: commands like `stedi query --json` own their standard output.
    env = dict(os.environ, STEDI_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", "from cloud_pipeline import class_archive as a; "
                    "p = a.archive_path(); p.parent.mkdir(parents=True); p.write_bytes(b'not an archive' * 100)"],
                   check=True, env=env)
    done = subprocess.run([sys.executable, "-c", _SESSION], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "3\n"
