"""An mmtests-style compare report between two or more runs, modes or traces.

The layout is that of mmtests' compare-kernels.sh (``compare-mmtests.pl``): one column per
run, the first one the baseline; a statistic row per metric (``Min``, ``1st-qrtle``,
``2nd-qrtle``, ``3rd-qrtle``, ``Max-90``, ``Max-95``, ``Max-99``, ``Max``, ``Amean``, and
``Hmean`` for rates) with the difference to the baseline in percent beside each value, signed
so that positive is better (lower for times, higher for rates); then ``Ops <counter>`` rows
of the /proc/vmstat deltas under the kernel's names (positive: more than the baseline). The
same report is written as text (fixed columns, to paste into a mail) and as Markdown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NOTE = (
    "Percentages: difference to the first column, positive is better (lower times, higher "
    "rates); Ops: /proc/vmstat deltas, positive is more."
)
# statistic rows of a distribution, mmtests' names and the quantile each takes
QUANTILE_ROWS = (
    ("Min", 0.0),
    ("1st-qrtle", 0.25),
    ("2nd-qrtle", 0.50),
    ("3rd-qrtle", 0.75),
    ("Max-90", 0.90),
    ("Max-95", 0.95),
    ("Max-99", 0.99),
    ("Max", 1.0),
)


@dataclass
class Metric:
    """One measured quantity of a run: its samples (unit), and which way is better."""

    name: str
    unit: str
    samples: np.ndarray
    higher_is_better: bool = False
    quantiles: bool = True  # print the quantile rows (else Amean/Hmean only)


@dataclass
class RunStats:
    """What the report compares of one run: named metrics and vmstat deltas."""

    name: str
    metrics: dict[str, Metric] = field(default_factory=dict)
    ops: dict[str, float] = field(default_factory=dict)

    def add(self, metric: Metric) -> None:
        self.metrics[metric.name] = metric


def _hmean(x: np.ndarray) -> float:
    x = x[x > 0]
    return float(len(x) / np.sum(1.0 / x)) if len(x) else math.nan


def _stat(m: Metric, row: str) -> float:
    x = np.asarray(m.samples, dtype=np.float64)
    if not len(x):
        return math.nan
    if row == "Amean":
        return float(x.mean())
    if row == "Hmean":
        return _hmean(x)
    q = dict(QUANTILE_ROWS)[row]
    return float(np.quantile(x, q))


def _pct(base: float, value: float, higher_is_better: bool) -> float:
    if not (math.isfinite(base) and math.isfinite(value)) or base == 0:
        return math.nan
    d = (value - base) / abs(base) * 100.0
    d = d if higher_is_better else -d
    return d if d != 0 else 0.0  # no "-0.00%"


@dataclass
class Row:
    label: str  # "Amean", "Ops"
    metric: str
    values: list[float]
    pcts: list[float]


def report_rows(runs: Sequence[RunStats]) -> list[Row]:
    """Every row of the report, metrics in the baseline's order, then the Ops rows."""
    if len(runs) < 2:
        raise ValueError(f"runs: need two or more to compare, got {len(runs)}")
    base = runs[0]
    rows = []
    names = list(base.metrics) + [n for r in runs[1:] for n in r.metrics if n not in base.metrics]
    names = list(dict.fromkeys(names))
    for name in names:
        ms = [r.metrics.get(name) for r in runs]
        ref = next(m for m in ms if m is not None)
        stats = [q for q, _ in QUANTILE_ROWS] if ref.quantiles else []
        stats = stats + ["Amean"] + (["Hmean"] if ref.higher_is_better else [])
        for st in stats:
            vals = [_stat(m, st) if m is not None else math.nan for m in ms]
            pcts = [_pct(vals[0], v, ref.higher_is_better) for v in vals]
            rows.append(Row(st, f"{name}-{ref.unit}" if ref.unit else name, vals, pcts))
    keys = list(dict.fromkeys(k for r in runs for k in r.ops))
    for k in keys:
        vals = [float(r.ops.get(k, math.nan)) for r in runs]
        rows.append(Row("Ops", k, vals, [_pct(vals[0], v, True) for v in vals]))
    return rows


def _num(v: float) -> str:
    if not math.isfinite(v):
        return "NaN"
    return f"{v:.2f}"


def _pct_text(p: float) -> str:
    return "(   NaN%)" if not math.isfinite(p) else f"({p:7.2f}%)"


def format_text(runs: Sequence[RunStats], title: str = "") -> str:
    """The report in mmtests' fixed-column text layout."""
    rows = report_rows(runs)
    lw = max(len(f"{r.label:<9} {r.metric}") for r in rows) + 2
    vw = max(12, *(len(_num(v)) for r in rows for v in r.values))
    cw = vw + 11
    lines = [title] if title else []
    lines.append(" " * lw + "".join(f"{r.name:>{cw}}" for r in runs))
    for r in rows:
        head = f"{r.label:<9} {r.metric}".ljust(lw)
        cells = [f"{_num(v):>{vw}} {_pct_text(p)}" for v, p in zip(r.values, r.pcts, strict=True)]
        lines.append(head + "".join(f"{c:>{cw}}" for c in cells))
    lines += ["", NOTE]
    return "\n".join(lines) + "\n"


def to_table(runs: Sequence[RunStats], title: str = ""):
    """The report as a migsim.output.tables.Table (value and percent per run): its Markdown and HTML."""
    from migsim.output.tables import Table

    rows = []
    for r in report_rows(runs):
        cells = [_num(v) if i == 0 else f"{_num(v)} {_pct_text(p)}"
                 for i, (v, p) in enumerate(zip(r.values, r.pcts, strict=True))]  # fmt: skip
        rows.append([r.label, r.metric, *cells])
    return Table(title, ["stat", "metric"] + [r.name for r in runs], rows, [NOTE])


def format_markdown(runs: Sequence[RunStats], title: str = "") -> str:
    """The same report as a Markdown table."""
    return to_table(runs, title).markdown()


# --------------------------------------------------------------------------------------------
# Runs from the files migsim writes
# --------------------------------------------------------------------------------------------


def stats_from_compaction_runs(df, name: str) -> RunStats:
    """A RunStats of compaction run rows (COMPACTION_RUNS, one mode): allocation latency
    pooled over runs, wall time and migration rate per run, vmstat deltas averaged over runs."""
    rs = RunStats(name)
    lat = np.concatenate([np.asarray(x, dtype=np.float64) for x in df["alloc_latency_us"]])
    rs.add(Metric("alloc-latency", "us", lat))
    rs.add(Metric("wall", "ms", df["wall_ms"].to_numpy(), quantiles=False))
    rate = df["pages_migrated"].to_numpy() / df["wall_s"].to_numpy()
    rs.add(Metric("migrate-rate", "pages/s", rate, higher_is_better=True, quantiles=False))
    hog = df["hog_iterations"].drop_nulls().to_numpy()
    if len(hog):
        rs.add(Metric("hog-iterations", "", hog.astype(float), True, quantiles=False))
    from migsim.kernel.compaction import VMSTAT_KEYS

    rs.ops = {k: float(df[k].mean()) for k in VMSTAT_KEYS}
    return rs


def stats_from_events(events, name: str) -> RunStats:
    """A RunStats of a trace (TRACE_EVENTS rows, real or simulated): pages and latency per
    migrate_pages() call, duration per compact_zone(), the vmstat the events account for."""
    from migsim.formats.trace import call_table, compaction_table, vmstat_from_events

    calls = call_table(events)
    rs = RunStats(name)
    rs.add(Metric("pages-per-call", "pages", calls["pages"].to_numpy().astype(float), True))
    rs.add(Metric("call-latency", "us", calls["latency_us"].drop_nulls().to_numpy()))
    rs.add(Metric("compaction", "us", compaction_table(events)["duration_us"].drop_nulls()
                  .to_numpy()))  # fmt: skip
    rs.ops = {k: float(v) for k, v in vmstat_from_events(events).items()}
    rs.ops["migrate_pages_calls"] = float(calls.height)
    return rs


def load_events(path: Path):
    """The TRACE_EVENTS frame of a trace text file or of a Parquet file of events."""
    import polars as pl

    from migsim.formats.trace import TRACE_EVENTS, read_trace

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.suffix == ".parquet":
        return TRACE_EVENTS.conform(pl.read_parquet(path))
    return read_trace(path).events


def load_stats(path: Path, name: str | None = None) -> list[RunStats]:
    """RunStats of a file: a compaction run Parquet (one per mode in it), a Parquet of trace
    events, or a trace text file."""
    import polars as pl

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.suffix == ".parquet":
        df = pl.read_parquet(path)
        if "alloc_latency_us" in df.columns:
            return [
                stats_from_compaction_runs(df.filter(pl.col("mode") == m), name or m)
                for m in df["mode"].unique(maintain_order=True)
            ]
    return [stats_from_events(load_events(path), name or path.stem)]
