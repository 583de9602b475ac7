"""`stedi pipeline report`: the HTML page's figures equal the tables', and its plots hold the data.

A small dirty fleet is built once per module.  Expected values are recomputed here in plain
Python from collected rows (a different route than the report's Spark aggregates), then compared
with what the page says and with the series the matplotlib figures actually hold.
"""

from __future__ import annotations

import base64
import io
import math
from collections import Counter
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from cloud_pipeline.config import PipelineOptions
from cloud_pipeline.report.data import EmptyLakeError, consent_of, histogram_of
from cloud_pipeline.report.html import Report, write_report
from cloud_pipeline.report.plots import CONSENT_COLOUR, DISTANCE_COLOUR, MAGNITUDE_COLOUR, consent_plot
from cloud_pipeline.runner import run_pipeline
from cloud_pipeline.storage.catalog import table_frames
from cloud_pipeline.storage.s3_cache import open_store
from simulator.fleet import generate_fleet
from stedi.contract import QUARANTINE_TABLE, TABLES, WARNINGS_TABLE
from stedi.lake import FolderLake
from tests.parts import screenshot
from tests.pipeline.helpers import SALT, T0, customer, frame

DAY_MS = 86_400_000


class _Page(HTMLParser):
    """The report's machine-readable parts: rows per table, reconciliation cells, quarantine, images."""

    def __init__(self) -> None:
        super().__init__()
        self.table_rows: dict[str, list[str]] = {}
        self.quarantine: dict[tuple[str, str], list[str]] = {}
        self.warnings: dict[tuple[str, str], list[str]] = {}
        self.cells: dict[tuple[str, str], str] = {}
        self.images: dict[str, str] = {}
        self._row: tuple[str, Any] | None = None
        self._cell: tuple[str, str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tr" and "data-table" in a:
            kind = "quarantine" if "data-rule" in a else "warnings" if "data-warning" in a else "tables"
            key = (a["data-table"], a.get("data-rule") or a["data-warning"]) if kind != "tables" else a["data-table"]
            self._row = (kind, key)
            self._rows(kind)[key] = []
        elif tag == "td":
            self._text = []
            if "data-category" in a:
                self._cell = (a["data-table"], a["data-category"])
        elif tag == "img":
            self.images[a["data-plot"]] = a["src"]

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def _rows(self, kind: str) -> dict[Any, list[str]]:
        return {"quarantine": self.quarantine, "warnings": self.warnings}.get(kind, self.table_rows)  # type: ignore[return-value]

    def handle_endtag(self, tag: str) -> None:
        text = "".join(self._text).strip()
        if tag == "td":
            if self._cell is not None:
                self.cells[self._cell] = text
                self._cell = None
            elif self._row is not None:
                kind, key = self._row
                self._rows(kind)[key].append(text)
        elif tag == "tr":
            self._row = None


def _int(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Report]:  # type: ignore[no-untyped-def]
    lake = tmp_path_factory.mktemp("report") / "lake"
    # Drifted too: the report shows the warnings and coercions of real data.
    generate_fleet(FolderLake(lake), customers=20, seed=1, dirty=True, drift=0.3)
    record = run_pipeline(spark, str(lake), PipelineOptions(salt=SALT)).record
    report = write_report(spark, open_store(str(lake)), lake.parent / "report.html")
    return lake, record, report


def test_report_figures_equal_the_tables(spark, built) -> None:  # type: ignore[no-untyped-def]
    lake, record, report = built
    page = _Page()
    page.feed((lake.parent / "report.html").read_text(encoding="utf-8"))
    frames = table_frames(spark, open_store(str(lake)))

    # Rows per table and zone: every contract table and the quarantine, each equal to its count.
    assert set(page.table_rows) == {t.name for t in TABLES} | {QUARANTINE_TABLE, WARNINGS_TABLE}
    for name, cells in page.table_rows.items():
        assert _int(cells[3]) == frames[name].count(), name
    assert all(_int(page.table_rows[t.name][3]) > 0 for t in TABLES)

    # The last run's reconciliation, cell by cell, and it balances.
    recon = record.reconciliation
    assert page.cells and {t for t, _ in page.cells} == set(recon)
    for table, r in recon.items():
        # A damaged file's rest is one landing row of the reconciliation that Spark cannot read.
        readable = r["landing"] - r["quarantined_by_rule"]["damaged_file"]
        assert _int(page.cells[(table, "landing")]) == r["landing"] and readable == frames[table].count()
        for category in ("trusted", "superseded", "duplicate", "excluded_no_consent", "quarantined"):
            assert _int(page.cells[(table, category)]) == r.get(category, 0), (table, category)
        for rule, n in r["quarantined_by_rule"].items():
            assert _int(page.cells[(table, f"quarantined/{rule}")]) == n
        assert page.cells[(table, "balanced")] == "yes"
        for subset in ("coerced", "with_warnings"):
            assert _int(page.cells[(table, subset)]) == r[subset], (table, subset)  # type: ignore[literal-required]

    # Quarantine per table and rule, recounted from the rows.
    rejected = Counter((r["table"], r["rule"]) for r in frames[QUARANTINE_TABLE].collect())
    assert rejected and {k: _int(v[2]) for k, v in page.quarantine.items()} == dict(rejected)
    assert all(v[3] for v in page.quarantine.values())  # each group shows an example reason
    warned = Counter((r["table"], r["rule"]) for r in frames[WARNINGS_TABLE].collect())
    assert warned and {k: _int(v[2]) for k, v in page.warnings.items()} == dict(warned)
    assert all(v[3] for v in page.warnings.values())
    assert recon["customer_landing"]["with_warnings"] > 0 and recon["customer_landing"]["coerced"] > 0

    # Self-contained: no script, no URL to fetch; every image is inline.
    text = report.html
    assert "<script" not in text and "http://" not in text and "https://" not in text and " url(" not in text
    assert text.count('src="') == text.count('src="data:image/png;base64,') == 3

    # No personal data on the page: no email, name or phone of any customer record.
    # (A drifted record may lack its phone or name: there is nothing of it to look for then.)
    for c in frames["customer_landing"].where("email IS NOT NULL").collect():
        assert all(v not in text for v in (c["email"], c["phone"], c["customerName"]) if v)
    assert report.data.lake == str(lake) and report.data.last_run == record.run_id in text


def _png_pixels(data: bytes) -> tuple[tuple[int, int], Counter[tuple[int, int, int]]]:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    rgb = image.convert("RGB")
    found = rgb.getcolors(maxcolors=rgb.size[0] * rgb.size[1]) or []
    return rgb.size, Counter({colour: n for n, colour in found})


def _has_colour(colours: Counter[tuple[int, int, int]], hex_colour: str, tolerance: int = 12) -> bool:
    want = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return any(all(abs(c - w) <= tolerance for c, w in zip(rgb, want, strict=True)) for rgb in colours)


def test_plots_hold_the_data_spark_holds(spark, built) -> None:  # type: ignore[no-untyped-def]
    lake, _, report = built
    frames = table_frames(spark, open_store(str(lake)))
    page = _Page()
    page.feed(report.html)
    assert set(page.images) == {"signal", "readings", "consent"}
    colour_of = {"signal": MAGNITUDE_COLOUR, "readings": DISTANCE_COLOUR, "consent": CONSENT_COLOUR}
    for key, src in page.images.items():
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        data = base64.b64decode(src[len(prefix):])
        assert data == report.plots[key].png  # type: ignore[union-attr]
        size, colours = _png_pixels(data)
        assert size == (1000, 400) and len(colours) > 50, key
        assert _has_colour(colours, colour_of[key]), key  # the data series were drawn, not only axes

    # (a) The sample: the customerKey with the most ML rows, its rows in time order.
    ml = [r.asDict() for r in frames["machine_learning_curated"].collect()]
    per_key = Counter(r["customerKey"] for r in ml)
    key = min(per_key, key=lambda k: (-per_key[k], k))
    mine = sorted((r for r in ml if r["customerKey"] == key), key=lambda r: (r["sensorReadingTime"], r["timestamp"]))
    assert len(mine) > 5
    t0 = mine[0]["sensorReadingTime"]
    signal = report.plots["signal"].series  # type: ignore[union-attr]
    assert signal["distanceFromObject"] == ([(r["sensorReadingTime"] - t0) / 1000 for r in mine],
                                            [r["distanceFromObject"] for r in mine])
    xs, ys = signal["accelerometer |a| (g)"]
    assert xs == [(r["timestamp"] - t0) / 1000 for r in mine]
    assert ys == pytest.approx([math.sqrt(r["x"] ** 2 + r["y"] ** 2 + r["z"] ** 2) for r in mine])
    assert report.data.signal is not None and report.data.signal.customer_key == key

    # (b) Readings per customer / step trainer, most first.
    readings = report.plots["readings"].series  # type: ignore[union-attr]
    for table, owner in (("accelerometer_trusted", "user"), ("step_trainer_trusted", "serialNumber")):
        counts = sorted(Counter(r[owner] for r in frames[table].collect()).values(), reverse=True)
        assert len(counts) > 3
        assert readings[table] == ([float(i) for i in range(1, len(counts) + 1)], counts)

    # (c) Consent over time: cumulative per UTC day (the fleet registers over about a year).
    assert report.data.consent is not None and report.data.consent.bucket_ms == DAY_MS
    latest: dict[str, Any] = {}
    for r in frames["customer_landing"].where("email IS NOT NULL AND lastUpdateDate IS NOT NULL").collect():
        if r["email"] not in latest or r["lastUpdateDate"] > latest[r["email"]]["lastUpdateDate"]:
            latest[r["email"]] = r
    registered = Counter(r["registrationDate"] // DAY_MS for r in latest.values())
    consented = Counter(r["shareWithResearchAsOfDate"] // DAY_MS for r in frames["customer_trusted"].collect())
    days = sorted(set(registered) | set(consented))
    days = [days[0] - 1, *days, days[-1] + 1]  # from zero before the first to the total after the last
    consent = report.plots["consent"].series  # type: ignore[union-attr]
    (reg_x, reg_y), = [v for k, v in consent.items() if k.startswith("registered")]
    (con_x, con_y), = [v for k, v in consent.items() if k.startswith("research consent")]
    assert reg_x == con_x == [datetime(1970, 1, 1) + timedelta(days=d) for d in days]
    assert reg_y == [sum(registered[d] for d in days[: i + 1]) for i in range(len(days))]
    assert con_y == [sum(consented[d] for d in days[: i + 1]) for i in range(len(days))]
    assert reg_y[0] == con_y[0] == 0
    assert reg_y[-1] == len(latest) == 20 and 0 < con_y[-1] == frames["customer_trusted"].count() < 20


def test_consent_within_a_minute_is_drawn_per_second(spark) -> None:  # type: ignore[no-untyped-def]
    """A demo's customers register within seconds: the curve must still show every step."""
    def registered_at(name: str, at: int, consent: int | None, updated: int = T0) -> dict[str, Any]:
        return {**customer(name, f"S-{name}", consent, updated=updated), "registrationDate": at}

    landing = frame(spark, "customer_landing", [
        registered_at("ann", T0, T0 + 30_000),
        registered_at("bob", T0 + 5_000, None),
        registered_at("cat", T0 - DAY_MS, None, updated=T0 - 1),  # an older record: the latest one counts
        registered_at("cat", T0 + 20_000, None, updated=T0 + 1),
    ])
    trusted = frame(spark, "customer_trusted", [registered_at("ann", T0, T0 + 30_000)])
    curve = consent_of(landing, trusted)
    assert curve is not None and curve.bucket_ms == 1000 and curve.bucket_name == "second"
    assert curve.starts_ms == [T0 + ms for ms in (-1000, 0, 5000, 20_000, 30_000, 31_000)]
    assert curve.registered == [0, 1, 2, 3, 3, 3] and curve.consented == [0, 0, 0, 0, 1, 1]
    drawn = consent_plot(curve).series
    assert drawn[next(k for k in drawn if k.startswith("registered"))][1] == curve.registered
    assert consent_of(frame(spark, "customer_landing", []), frame(spark, "customer_trusted", [])) is None


def test_many_owners_are_binned_in_spark(spark) -> None:  # type: ignore[no-untyped-def]
    per_owner = {f"o{i}": 1 + (i * 7) % 23 for i in range(30)}
    df = spark.createDataFrame([(o,) for o, n in per_owner.items() for _ in range(n)], "user string")
    h = histogram_of(df, "user", "t", "customer", max_bins=5, max_ranked=10)
    assert not h.ranked and h.owners == 30 and h.readings == sum(per_owner.values())
    assert h.lows[0] == min(per_owner.values()) and h.highs[-1] >= max(per_owner.values())
    expected = [sum(1 for n in per_owner.values() if lo <= n <= hi) for lo, hi in zip(h.lows, h.highs, strict=True)]
    assert h.counts == expected and sum(h.counts) == 30 and len(h.counts) <= 5


def test_unbuilt_and_empty_lakes(spark, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from stedi_app.cli import app
    from tests.parts import run_main

    empty = tmp_path / "empty"
    with pytest.raises(EmptyLakeError, match="nothing to report"):
        write_report(spark, open_store(str(empty)), tmp_path / "never.html")
    code, _, err = run_main(monkeypatch, capsys, "pipeline", "report", "--lake", str(empty), "--out",
                            str(tmp_path / "x.html"))
    assert code == 2 and f"no lake at {empty}" in err
    (empty / "customer" / "landing").mkdir(parents=True)  # a lake, with nothing in it yet
    code, _, err = run_main(monkeypatch, capsys, "pipeline", "report", "--lake", str(empty), "--out",
                            str(tmp_path / "x.html"))
    assert code == 2 and "nothing to report" in err
    assert not (tmp_path / "x.html").exists()

    # Landing data but no run: an honest page, landing counted, zones "not built", no plots of them.
    landing_only = tmp_path / "landing"
    generate_fleet(FolderLake(landing_only), customers=4, seed=2)
    out = tmp_path / "landing.html"
    result = CliRunner().invoke(app, ["pipeline", "report", "--lake", str(landing_only), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = _Page()
    page.feed(out.read_text(encoding="utf-8"))
    assert page.table_rows["customer_landing"][3] != "0"
    assert all(page.table_rows[t.name][3] == "not built" for t in TABLES if t.zone != "landing")
    assert "No pipeline run has been committed" in out.read_text() and "No data: machine_learning_curated" in out.read_text()
    assert set(page.images) == {"consent"}  # registrations exist; nothing is trusted


def test_report_renders_in_chromium(chromium: str, built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lake, _, report = built
    png = tmp_path / "report.png"
    screenshot(chromium, lake.parent / "report.html", png, size=(1280, 2400))
    size, colours = _png_pixels(png.read_bytes())
    assert size == (1280, 2400)
    # A blank or unstyled page has a handful of colours; this one has text, zone colours and plots.
    assert len(colours) > 1000
    assert colours.most_common(1)[0][1] < 0.9 * size[0] * size[1]
    for colour in (DISTANCE_COLOUR, MAGNITUDE_COLOUR):  # the signal plot is inside the first 2400 px
        assert _has_colour(colours, colour), colour


def test_report_of_an_s3_lake(built, s3_bucket: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The same lake uploaded to moto's S3: the report reads it through the local cache."""
    import boto3
    from typer.testing import CliRunner

    from stedi.lake import S3Lake
    from stedi_app.cli import app

    lake, _, report = built
    monkeypatch.setenv("STEDI_CACHE", str(tmp_path / "cache"))
    remote = S3Lake(s3_bucket, "lakes/report", client=boto3.client("s3"))
    for path in lake.rglob("*"):
        if path.is_file() and not path.name.startswith("."):  # Spark's .crc side files
            remote.put(path.relative_to(lake).as_posix(), path.read_bytes())
    out = tmp_path / "s3.html"
    url = f"s3://{s3_bucket}/lakes/report"
    result = CliRunner().invoke(app, ["pipeline", "report", "--lake", url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    folder_page, s3_page = _Page(), _Page()
    folder_page.feed(report.html)
    s3_page.feed(out.read_text(encoding="utf-8"))
    assert s3_page.table_rows == folder_page.table_rows and s3_page.cells == folder_page.cells
    assert s3_page.quarantine == folder_page.quarantine and set(s3_page.images) == {"signal", "readings", "consent"}
    assert f"<code>{url}</code>" in out.read_text(encoding="utf-8")
