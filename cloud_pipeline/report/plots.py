"""The report's plots: matplotlib figures (Agg, no pyplot state) rendered to PNG bytes.

Every plot also returns the data series its figure actually holds, read back from the
figure's lines and bars after drawing, so a test can compare what was drawn with what Spark
computed instead of guessing from pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from cloud_pipeline.report.data import ConsentCurve, Histogram, Signal
from cloud_pipeline.report.words import plural

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Up to this many ranked bars get a tick each.
MAX_RANK_TICKS = 12
#: Pixels per inch of the PNGs; figures are 10 in wide, so 1000 px.
DPI = 100
DISTANCE_COLOUR = "#1f6fb4"
MAGNITUDE_COLOUR = "#e0701f"
CONSENT_COLOUR = "#2a9d5c"
REGISTERED_COLOUR = "#555f6d"


@dataclass(frozen=True)
class Plot:
    key: str  # stable name: "signal", "readings", "consent"
    title: str
    alt: str  # what the image shows, for the <img> alt text
    png: bytes
    #: Label -> (x values, y values) of every line and bar series in the figure, as drawn.
    series: dict[str, tuple[list[Any], list[Any]]]
    #: The first line of each axes' title -> the x ticks it shows (within its limits), as drawn.
    x_ticks: dict[str, list[float]] = field(default_factory=dict)


def drawn_series(fig: Figure) -> dict[str, tuple[list[Any], list[Any]]]:
    """Each labelled line (its original x/y data) and bar series (centres, heights) of ``fig``."""
    out: dict[str, tuple[list[Any], list[Any]]] = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            label = str(line.get_label())
            if not label.startswith("_"):
                # tolist(): plain Python numbers and dates, not numpy scalars.
                out[label] = (np.asarray(line.get_xdata(orig=True)).tolist(),
                              np.asarray(line.get_ydata(orig=True)).tolist())
        for container in ax.containers:
            patches = list(container)
            out[str(container.get_label())] = (
                [p.get_x() + p.get_width() / 2 for p in patches],  # type: ignore[attr-defined]
                [p.get_height() for p in patches],  # type: ignore[attr-defined]
            )
    return out


def x_ticks(fig: Figure) -> dict[str, list[float]]:
    out = {}
    for ax in fig.axes:
        low, high = sorted(ax.get_xlim())
        ticks = [float(t) for t in ax.get_xticks() if low <= t <= high]
        out[ax.get_title().split("\n")[0]] = ticks
    return out


def _figure(height: float = 4.0) -> Figure:
    from matplotlib.figure import Figure

    # A bare Figure with the Agg canvas: no global pyplot state, no display needed.
    fig = Figure(figsize=(10, height), dpi=DPI, layout="constrained")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    return fig


def _finish(key: str, title: str, alt: str, fig: Figure) -> Plot:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return Plot(key, title, alt, buffer.getvalue(), drawn_series(fig), x_ticks(fig))


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def signal_plot(signal: Signal) -> Plot:
    """Distance over time with the accelerometer magnitude on a twin axis (seconds since the
    customer's first step reading shown)."""
    t0 = signal.step_time[0]
    step_s = [(t - t0) / 1000 for t in signal.step_time]
    accel_s = [(t - t0) / 1000 for t in signal.accel_time]
    marker = "o" if len(step_s) <= 200 else None
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(step_s, signal.distance, color=DISTANCE_COLOUR, marker=marker, markersize=3, linewidth=1.2,
            label="distanceFromObject")
    ax.set_xlabel(f"seconds since {_utc(t0)}")
    ax.set_ylabel("distanceFromObject", color=DISTANCE_COLOUR)
    ax.tick_params(axis="y", colors=DISTANCE_COLOUR)
    twin = ax.twinx()
    twin.plot(accel_s, signal.magnitude, color=MAGNITUDE_COLOUR, marker=marker, markersize=3, linewidth=1.0,
              label="accelerometer |a| (g)")
    twin.set_ylabel("accelerometer magnitude sqrt(x²+y²+z²) (g)", color=MAGNITUDE_COLOUR)
    twin.tick_params(axis="y", colors=MAGNITUDE_COLOUR)
    lines = ax.get_lines() + twin.get_lines()
    # Above the axes: inside, the legend would hide part of the signal.
    fig.legend(lines, [str(line.get_label()) for line in lines], loc="outside upper right", ncols=2)
    total = plural(signal.total_rows, "paired reading")
    shown = f"{len(step_s):,} of {total}" if len(step_s) < signal.total_rows else f"all {total}" if signal.total_rows > 1 else total
    title = f"customer {signal.customer_key[:12]}…: {shown}"
    ax.set_title(title)
    alt = (f"Line chart of distanceFromObject and accelerometer magnitude over time for customerKey "
           f"{signal.customer_key[:12]}, {len(step_s)} points")
    return _finish("signal", title, alt, fig)


def readings_plot(histograms: list[Histogram]) -> Plot:
    """One chart per table side by side: readings of each owner (few) or a histogram (many)."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure()
    drawn = [h for h in histograms if h.owners]
    axes = fig.subplots(1, len(drawn), squeeze=False)[0]
    for ax, h in zip(axes, drawn, strict=True):
        if h.ranked:
            # Few owners: one bar each, most readings first (unnamed: rank only).
            ranks = range(1, len(h.ranked) + 1)
            ax.bar(ranks, h.ranked, width=0.8, color=DISTANCE_COLOUR, label=h.table)
            ax.set_ylabel("readings")
            if len(h.ranked) == 1:
                # One bar has no rank to show: no 0.6-1.4 axis of fractions, only what it is.
                ax.set_xticks([])
                ax.set_xlabel(f"the one {h.per}")
            else:
                ax.set_xticks(list(ranks) if len(h.ranked) <= MAX_RANK_TICKS else [])
                if len(h.ranked) > MAX_RANK_TICKS:
                    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                ax.set_xlabel(f"{h.per}s, ranked by readings")
            ax.set_xlim(0.4, len(h.ranked) + 0.6)
        else:
            centres = [(lo + hi) / 2 for lo, hi in zip(h.lows, h.highs, strict=True)]
            widths = [hi - lo + 1 for lo, hi in zip(h.lows, h.highs, strict=True)]
            ax.bar(centres, h.counts, width=[w * 0.9 for w in widths], color=DISTANCE_COLOUR, label=h.table)
            ax.set_xlabel(f"readings per {h.per}")
            ax.set_ylabel(f"{h.per}s")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        # Two lines: side by side, one line of this length is wider than half the figure.
        ax.set_title(f"{h.table}\n{plural(h.readings, 'reading')}, {plural(h.owners, h.per)}", fontsize=11)
    alt = "Histograms of readings per customer: " + "; ".join(
        f"{h.table} ({plural(h.owners, h.per)}, {plural(h.readings, 'reading')})" for h in drawn)
    return _finish("readings", "Readings per customer (trusted zone)", alt, fig)


def consent_plot(curve: ConsentCurve) -> Plot:
    """Cumulative customers registered and consenting to research, per UTC time bucket."""
    import matplotlib.dates as mdates
    from matplotlib.ticker import MaxNLocator

    starts = np.array(curve.starts_ms, dtype="datetime64[ms]")
    fig = _figure()
    ax = fig.add_subplot()
    ax.step(starts, curve.registered, where="post", color=REGISTERED_COLOUR, linewidth=1.6,
            label="registered (registrationDate, latest landing record)")
    ax.step(starts, curve.consented, where="post", color=CONSENT_COLOUR, linewidth=1.6,
            label="research consent (shareWithResearchAsOfDate, customer_trusted)")
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_ylabel("customers (cumulative)")
    ax.set_xlabel(f"UTC, counted per {curve.bucket_name}")
    # Head room above the curves for the legend.
    ax.set_ylim(0, max(curve.registered[-1], curve.consented[-1]) * 1.3 + 0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper left")
    consented = curve.consented[-1]
    title = (f"Consent over time: {consented:,} of {plural(curve.registered[-1], 'registered customer')} "
             f"{'shares' if consented == 1 else 'share'} with research")
    ax.set_title(title)
    alt = (f"Step chart of cumulative registered ({curve.registered[-1]}) and consenting "
           f"({curve.consented[-1]}) customers by {curve.bucket_name}")
    return _finish("consent", title, alt, fig)
