"""The first-hour transcript: its script runs (--help) and docs/first-hour.md holds every step."""

from __future__ import annotations

import subprocess
import sys

from tests.parts import REPO


def test_the_script_explains_itself() -> None:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "first_hour.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "docs/first-hour.md" in done.stdout and "--keep" in done.stdout


def test_the_transcript_names_each_step_with_its_command() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import first_hour
    finally:
        sys.path.remove(str(REPO / "scripts"))
    doc = (REPO / "docs" / "first-hour.md").read_text()
    for n, title in enumerate(first_hour.STEPS, 1):
        assert f"## {n}. {title}\n" in doc, title
    for command in ("$ stedi firmware flash", "$ stedi gateway register", "$ stedi gateway run",
                    "$ stedi pipeline run", "$ stedi query", "$ stedi pipeline report", "$ stedi demo"):
        assert command in doc, command
    assert doc.count("\nexit ") >= len(first_hour.STEPS)
