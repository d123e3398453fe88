"""The answer at the top of results/index.html: a few sentences and one figure that say when
batching and offloading the migration copy pays off, every number computed here from the
summary Parquet files (throughput and compaction summaries, the series of every published
number, the COMPACT_CLUSTER_MAX and hybrid-threshold studies).

Each number is written as ``<data class='num' data-key=KEY value=VALUE>TEXT</data>``: KEY
names what it is (for example ``compaction.idle.wall_pct``), VALUE the unrounded number, TEXT
what the reader sees; tests/test_browser.py recomputes every KEY from the Parquet.

One error measure is used everywhere (``mape_pct``): the mean absolute percentage error,
100 x mean |simulated / published - 1| over the cells with a published value.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from migsim.units import format_size

if TYPE_CHECKING:  # Altair only where the figure is drawn: results/index.html reads it
    import altair as alt

MAPE_DEFINITION = "MAPE: 100 × mean |simulated / published − 1| over the cells"
LOADS = ("idle", "busy")


def mape_pct(rel_errors: Sequence[float] | pl.Series) -> float | None:
    """Mean absolute percentage error (%) of relative errors simulated / published - 1; None
    when there is no cell."""
    s = pl.Series(rel_errors, dtype=pl.Float64).drop_nulls()
    return None if s.len() == 0 else float(s.abs().mean()) * 100.0


@dataclass
class Numbers:
    """The numbers of one page fragment as they are written: key -> value (unrounded)."""

    values: dict[str, float | int | str] = field(default_factory=dict)

    def __call__(self, key: str, value: float | int | str, text: str) -> str:
        """`text` marked as the number `key` (HTML); records `value`."""
        if key in self.values and self.values[key] != value:
            raise ValueError(f"answer number {key!r} written twice with different values")
        self.values[key] = value
        v = html.escape(str(value), quote=True)
        return (
            f"<data class='num' data-key='{html.escape(key, quote=True)}' value='{v}'>"
            f"{html.escape(text)}</data>"
        )


def _signed_pct(x: float) -> str:
    return f"{x:+.1f}%".replace("-", "−")


def _and(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _channels_word(n: int) -> str:
    return "channel" if n == 1 else "channels"


# ---------------------------------------------------------------------------------------------
# move_pages(): where DMA offload beats the CPU copy
# ---------------------------------------------------------------------------------------------


def dma_wins(throughput: pl.DataFrame) -> pl.DataFrame:
    """Per folio size of the DMA cells: the channel counts simulated, those faster than the
    CPU copy of the same folio size (speedup > 1) and the smallest of them (null if none)."""
    dma = throughput.filter((pl.col("mode") == "dma") & pl.col("speedup").is_not_null())
    return (
        dma.group_by("folio_bytes", "folio_size")
        .agg(
            pl.col("channels").sort().alias("all"),
            pl.col("channels").filter(pl.col("speedup") > 1.0).sort().alias("wins"),
        )
        .with_columns(pl.col("wins").list.min().alias("first"))
        .sort("folio_bytes", descending=True)
    )


def _throughput_sentence(tp: pl.DataFrame, n: Numbers) -> str | None:
    wins = dma_wins(tp).sort("folio_bytes")
    if wins.height == 0:
        return None
    # consecutive folio sizes that win from the same channel count (and at every count above
    # it) form one group; a size that wins at some counts only is listed with them
    groups: list[tuple[list[str], int | None, list[int]]] = []
    for r in wins.iter_rows(named=True):
        upward = r["wins"] and [c for c in r["all"] if c >= r["first"]] == r["wins"]
        first = r["first"] if upward else None
        if groups and upward and groups[-1][1] == first:
            groups[-1][0].append(r["folio_size"])
        else:
            groups.append(([r["folio_size"]], first, r["wins"]))

    def sizes(g: list[str]) -> tuple[str, str]:
        lo = n(f"throughput.folio.{g[0]}", g[0], g[0])
        if len(g) == 1:
            return lo, g[0]
        hi = n(f"throughput.folio.{g[-1]}", g[-1], g[-1])
        return (f"{lo} and {hi}" if len(g) == 2 else f"{lo} to {hi}"), f"{g[0]}..{g[-1]}"

    won, never = [], []
    for g, first, chans in reversed(groups):
        text, key = sizes(g)
        if first is not None:
            k = n(f"throughput.first_channels.{key}", first, str(first))
            won.append(f"{text} folios from {k} {_channels_word(first)} up")
        elif chans:
            ks = [n(f"throughput.win_channels.{g[0]}.{c}", c, str(c)) for c in chans]
            won.append(f"{text} folios with {_and(ks)} {_channels_word(chans[-1])} only")
        else:
            never.append(text)
    dma = tp.filter((pl.col("mode") == "dma") & pl.col("speedup").is_not_null())
    best = dma.sort(["speedup", "folio_bytes", "channels"], descending=[True, True, False]).row(
        0, named=True
    )
    if won:
        s = "In move_pages(), DMA offload beats the CPU copy for " + "; for ".join(won)
        if never:
            s += f", and for {_and(never)} folios never"
    else:
        s = "In move_pages(), DMA offload never beats the CPU copy"
    sp = best["speedup"]
    s += (
        f"; {'at best' if sp > 1 else 'at most'} "
        f"{n('throughput.best.speedup', sp, f'{sp:.2f}')}× its throughput ("
        f"{n('throughput.best.folio', best['folio_size'], best['folio_size'])} folios, "
        f"{n('throughput.best.channels', best['channels'], str(best['channels']))} "
        f"{_channels_word(best['channels'])})."
    )
    return s


# ---------------------------------------------------------------------------------------------
# Direct compaction: what offload costs and saves, idle and busy
# ---------------------------------------------------------------------------------------------


def compaction_cells(compaction: pl.DataFrame, source: str) -> dict[str, dict[str, float]]:
    """mode -> metric -> value of a compaction summary; `source` 'mean' (simulated) or
    'published'."""
    out: dict[str, dict[str, float]] = {}
    for r in compaction.iter_rows(named=True):
        if r[source] is not None:
            out.setdefault(r["mode"], {})[r["metric"]] = r[source]
    return out


def offload_effect(cells: Mapping[str, Mapping[str, float]], load: str) -> dict[str, float]:
    """Offload against the CPU copy on an idle or busy machine (%): wall time, kernel CPU
    time (wall x sys%), and on a busy machine the competing task's iterations."""
    base, dma = ("baseline", "dma") if load == "idle" else ("busy-baseline", "busy-dma")
    b, d = cells[base], cells[dma]
    out = {
        "wall_pct": (d["wall_ms"] / b["wall_ms"] - 1) * 100,
        "sys_pct": (d["wall_ms"] * d["sys_pct"] / (b["wall_ms"] * b["sys_pct"]) - 1) * 100,
    }
    if load == "busy" and b.get("hog_iterations") and d.get("hog_iterations"):
        out["hog_pct"] = (d["hog_iterations"] / b["hog_iterations"] - 1) * 100
    return out


def _has(cells: Mapping, load: str) -> bool:
    modes = ("baseline", "dma") if load == "idle" else ("busy-baseline", "busy-dma")
    return all(
        m in cells and all(k in cells[m] for k in ("wall_ms", "sys_pct")) and cells[m]["sys_pct"]
        for m in modes
    )


def _compaction_sentence(cp: pl.DataFrame, n: Numbers) -> str | None:
    sim, pub = compaction_cells(cp, "mean"), compaction_cells(cp, "published")
    loads = [ld for ld in LOADS if _has(sim, ld)]
    if not loads:
        return None
    channels = cp.filter(pl.col("mode").str.contains("dma"))["channels"].drop_nulls()
    ch = int(channels[0]) if channels.len() else None
    names = {
        "wall_pct": "wall time",
        "sys_pct": "kernel CPU time",
        "hog_pct": "the competing task's iterations",
    }
    parts = []
    for load in loads:
        e = offload_effect(sim, load)
        p = offload_effect(pub, load) if _has(pub, load) else None
        bits = []
        for key in ("wall_pct", "sys_pct", "hog_pct"):
            if key not in e:
                continue
            text = f"{names[key]} {n(f'compaction.{load}.{key}', e[key], _signed_pct(e[key]))}"
            if p is not None and key in p:
                pk = n(f"compaction.{load}.{key}.published", p[key], _signed_pct(p[key]))
                text += f" (published {pk})"
            bits.append(text)
        parts.append(f"on a{'n' if load == 'idle' else ''} {load} machine " + ", ".join(bits))
    head = "In direct compaction, offloading the copy"
    if ch is not None:
        head += f" to {n('compaction.channels', ch, str(ch))} DMA {_channels_word(ch)}"
    return f"{head} changes, against the CPU copy, " + "; ".join(parts) + "."


# ---------------------------------------------------------------------------------------------
# Break-even batch size (COMPACT_CLUSTER_MAX) and the best hybrid threshold
# ---------------------------------------------------------------------------------------------


def break_even(cluster_max: pl.DataFrame) -> pl.DataFrame:
    """Per load and DMA channel count: the smallest COMPACT_CLUSTER_MAX at which DMA
    compaction is no slower than the CPU copy (null: none in the range) and the largest
    size simulated."""
    dma = cluster_max.filter(pl.col("copy") == "dma")
    return (
        dma.group_by("load", "channels")
        .agg(
            pl.col("cluster_max").filter(pl.col("break_even") == 1).min().alias("break_even"),
            pl.col("cluster_max").max().alias("largest"),
        )
        .sort("channels", "load")
    )


def _break_even_sentence(cm: pl.DataFrame, n: Numbers) -> str | None:
    be = break_even(cm)
    if be.height == 0:
        return None
    found, never = [], {}
    for ch in sorted(be["channels"].unique().to_list()):
        rows = {r["load"]: r for r in be.filter(pl.col("channels") == ch).iter_rows(named=True)}
        at, missing = [], []
        for load in [ld for ld in LOADS if ld in rows]:
            v = rows[load]["break_even"]
            if v is None:
                missing.append(load)
            else:
                at.append(f"{n(f'break_even.{load}.{ch}', v, str(v))} pages {load}")
        if at:
            k = n(f"break_even.channels.{ch}", ch, str(ch))
            found.append(f"with {k} {_channels_word(ch)} from {_and(at)}")
        if missing:
            never.setdefault(tuple(missing), []).append(ch)
    s = "Break-even batch size (COMPACT_CLUSTER_MAX, the pages per migrate_pages() batch): "
    s += "DMA compaction is no slower than the CPU copy " + (
        "; ".join(found) if found else "at no size simulated"
    )
    largest = int(be["largest"].max())
    for loads, chans in never.items():
        ks = [n(f"break_even.none.channels.{c}.{'+'.join(loads)}", c, str(c)) for c in chans]
        s += (
            f"; with {_and(ks)} {_channels_word(chans[-1])} it stays slower "
            f"({_and(list(loads))}) up to {n('break_even.largest', largest, str(largest))} pages"
        )
    return s + "."


def best_thresholds(hybrid: pl.DataFrame) -> pl.DataFrame:
    """Per load and channel count the threshold with the lowest wall time (the study's
    `best` row): T, its wall time against the CPU copy (%) and whether any batch is
    offloaded there."""
    return (
        hybrid.filter(pl.col("best") == 1)
        .select(
            "load",
            "channels",
            "min_batch_bytes",
            "threshold",
            "vs_baseline_pct",
            (pl.col("dma_copies") > 0).alias("offloads"),
        )
        .sort("channels", "load")
    )


def _hybrid_sentence(hy: pl.DataFrame, n: Numbers) -> str | None:
    best = best_thresholds(hy)
    if best.height == 0:
        return None
    parts = []
    for ch in sorted(best["channels"].unique().to_list()):
        k = n(f"hybrid.channels.{ch}", ch, str(ch))
        rows = {r["load"]: r for r in best.filter(pl.col("channels") == ch).iter_rows(named=True)}
        loads = [ld for ld in LOADS if ld in rows]
        offload = [ld for ld in loads if rows[ld]["offloads"]]
        rest = [ld for ld in loads if ld not in offload]
        bits = []
        thresholds = {rows[ld]["threshold"] for ld in offload}
        walls = ", ".join(
            n(
                f"hybrid.{ld}.{ch}.wall_pct",
                rows[ld]["vs_baseline_pct"],
                _signed_pct(rows[ld]["vs_baseline_pct"]),
            )
            + f" {ld}"
            for ld in offload
        )
        if len(thresholds) == 1:
            ts = [
                n(f"hybrid.{ld}.{ch}.threshold", rows[ld]["threshold"], rows[ld]["threshold"])
                for ld in offload
            ]
            bits.append(f"T = {ts[0]} (wall time {walls} against the CPU copy)")
        elif offload:
            ts = [
                n(f"hybrid.{ld}.{ch}.threshold", rows[ld]["threshold"], rows[ld]["threshold"])
                + f" {ld}"
                for ld in offload
            ]
            bits.append(f"T = {_and(ts)} (wall time {walls} against the CPU copy)")
        if rest:
            bits.append(f"no threshold beats the CPU copy ({_and(rest)})")
        parts.append(f"with {k} {_channels_word(ch)}, " + "; ".join(bits))
    return (
        "Best hybrid threshold (offload only batches of at least T bytes): "
        + "; ".join(parts)
        + "."
    )


# ---------------------------------------------------------------------------------------------
# How far the model is from the published runs
# ---------------------------------------------------------------------------------------------


def model_errors(series: pl.DataFrame | None, compaction: pl.DataFrame | None) -> dict:
    """MAPE (%) and cell counts: throughput cells of every published table, fitted and
    predicted (the series), and the compaction wall time of the fitted (baseline) and the
    predicted rows."""
    out: dict[str, float | int | None] = {}
    if series is not None and series.height:
        for fitted, name in ((True, "fitted"), (False, "predicted")):
            sel = series.filter(pl.col("fitted") == fitted)
            out[f"throughput.{name}.mape"] = mape_pct(sel["error_pct"] / 100.0)
            out[f"throughput.{name}.cells"] = sel.height
    if compaction is not None:
        wall = compaction.filter(
            (pl.col("metric") == "wall_ms") & pl.col("rel_error").is_not_null()
        )
        fit = wall.filter(pl.col("mode") == "baseline")  # stage 2 fits this row only
        pred = wall.filter(pl.col("mode") != "baseline")
        out["compaction.fitted.mape"] = mape_pct(fit["rel_error"])
        out["compaction.fitted.cells"] = fit.height
        out["compaction.predicted.mape"] = mape_pct(pred["rel_error"])
        out["compaction.predicted.cells"] = pred.height
    return out


def _model_sentence(err: Mapping, n: Numbers) -> str | None:
    def part(kind: str, what: str) -> str | None:
        bits = []
        for use in ("fitted", "predicted"):
            m, c = err.get(f"{kind}.{use}.mape"), err.get(f"{kind}.{use}.cells")
            if m is None or not c:
                continue
            cells = n(f"model.{kind}.{use}.cells", c, str(c))
            noun = "cell" if c == 1 else "cells"
            if kind == "compaction":
                noun = "row" if c == 1 else "rows"
            bits.append(
                f"{n(f'model.{kind}.{use}.mape', m, f'{m:.1f}')}% over the {cells} {use} {noun}"
            )
        return f"{what} {_and(bits)}" if bits else None

    parts = [
        p
        for p in (
            part("throughput", "move_pages() throughput (every published table of the series)"),
            part("compaction", "compaction wall time"),
        )
        if p
    ]
    if not parts:
        return None
    return (
        "The model against the published runs, as MAPE (the mean absolute percentage error "
        "of simulated against published): " + "; ".join(parts) + "."
    )


# ---------------------------------------------------------------------------------------------
# The section
# ---------------------------------------------------------------------------------------------


def _read(path: str | Path | None) -> pl.DataFrame | None:
    return pl.read_parquet(path) if path and Path(path).exists() else None


def answer_sentences(paths: Mapping[str, str | Path | None]) -> tuple[list[str], Numbers]:
    """The answer's sentences (HTML, numbers marked) from the Parquet files `paths`
    (keys throughput, compaction, series, cluster_max, hybrid; a missing key or file leaves
    its sentence out) and the numbers written."""
    n = Numbers()
    tp, cp = _read(paths.get("throughput")), _read(paths.get("compaction"))
    series = _read(paths.get("series"))
    cm, hy = _read(paths.get("cluster_max")), _read(paths.get("hybrid"))
    out = [
        tp is not None and _throughput_sentence(tp, n),
        cp is not None and _compaction_sentence(cp, n),
        cm is not None and _break_even_sentence(cm, n),
        hy is not None and _hybrid_sentence(hy, n),
        _model_sentence(model_errors(series, cp), n),
    ]
    return [s for s in out if s], n


def answer_chart(throughput: pl.DataFrame) -> alt.LayerChart | alt.Chart:
    """The answer's figure: DMA offload's simulated speed-up over the CPU copy of the same
    folio size, DMA channels x folio size, the value printed in each cell, cells where
    offload wins (> 1x) in blue and outlined, those where it loses in red."""
    import altair as alt

    d = throughput.filter((pl.col("mode") == "dma") & pl.col("speedup").is_not_null())
    if d.height == 0:
        df = pl.DataFrame({"text": ["no DMA cell in this configuration"]})
        return alt.Chart(df).mark_text().encode(text="text:N").properties(width=300, height=40)
    sizes = [format_size(b) for b in sorted(d["folio_bytes"].unique().to_list())]
    chans = sorted(d["channels"].unique().to_list(), reverse=True)
    d = d.select(
        "folio_size",
        "channels",
        "speedup",
        pl.when(pl.col("speedup") > 1)
        .then(pl.lit("faster"))
        .otherwise(pl.lit("slower"))
        .alias("v"),
    )
    x = alt.X("folio_size:O", sort=sizes, title="folio size", axis=alt.Axis(labelAngle=0))
    y = alt.Y("channels:O", sort=chans, title="DMA channels")
    lo, hi = float(d["speedup"].min()), float(d["speedup"].max())
    rect = (
        alt.Chart()
        .mark_rect(stroke="white", strokeWidth=1)
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "speedup:Q",
                title="speed-up (×)",
                scale=alt.Scale(
                    type="log",
                    scheme="redblue",
                    domain=[min(lo, 0.99), max(hi, 1.01)],
                    domainMid=1.0,
                ),
                legend=None,
            ),
            tooltip=[
                alt.Tooltip("folio_size:N", title="folio size"),
                alt.Tooltip("channels:O", title="DMA channels"),
                alt.Tooltip("speedup:Q", title="speed-up (×)", format=".2f"),
            ],
        )
    )

    def text(condition: str, weight: str) -> alt.Chart:
        return (
            alt.Chart()
            .transform_filter(condition)
            .transform_calculate(label="format(datum.speedup, '.2f') + '×'")
            .mark_text(fontSize=11, fontWeight=weight, color="black")
            .encode(x=x, y=y, text="label:N")
        )

    return (
        alt.layer(
            rect, text("datum.speedup > 1", "bold"), text("datum.speedup <= 1", "normal"), data=d
        )
        .properties(
            width=46 * len(sizes),
            height=24 * len(chans),
            title=alt.Title(
                "move_pages(): DMA speed-up over the CPU copy",
                subtitle="blue, bold: offload faster; red: slower (simulated)",
            ),
        )
        .configure_view(stroke=None)
    )


def answer_section(
    paths: Mapping[str, str | Path | None], figure_svg: str | None = None
) -> tuple[str, Numbers]:
    """``<section id="answer">``: the sentences (one paragraph) beside the figure's inline SVG
    `figure_svg`; and the numbers it writes."""
    sentences, numbers = answer_sentences(paths)
    parts = [
        "<section id='answer'>",
        "<h2>When does batching and offloading the migration copy pay off?</h2>",
        "<div class='answer-body'>",
        "<div class='answer-text'>",
    ]
    parts += [f"<p>{s}</p>" for s in sentences]
    parts.append(
        "<p class='note'>Every number here is computed from the summary Parquet files "
        "(links below); simulated unless marked published.</p>"
    )
    parts.append("</div>")
    if figure_svg:
        parts.append(f"<figure class='answer-figure'>{figure_svg}</figure>")
    parts += ["</div>", "</section>"]
    return "\n".join(parts), numbers


ANSWER_CSS = (
    "#answer{border:1px solid #ccd;background:#f8f9fc;padding:.4em 1em;margin:.8em 0}"
    "#answer h2{margin:.3em 0}#answer p{margin:.45em 0;line-height:1.35}"
    ".answer-body{display:flex;gap:1.5em;align-items:flex-start;flex-wrap:wrap}"
    ".answer-text{flex:1 1 520px}.answer-figure{margin:0;flex:0 0 auto}"
    ".answer-figure svg{max-width:100%;height:auto}"
    "data.num{font-variant-numeric:tabular-nums}"
)


# ---------------------------------------------------------------------------------------------
# One line per study (the index's study sections)
# ---------------------------------------------------------------------------------------------


def _first_sentence(text: str, limit: int = 200) -> str:
    """The first sentence of a findings paragraph (up to the first '. ' outside brackets),
    cut at its first clause ('; ') when longer than `limit` characters."""
    depth, out = 0, text
    for i, ch in enumerate(text):
        depth += 1 if ch in "([" else -1 if ch in ")]" else 0
        if ch == "." and depth == 0 and (i + 1 == len(text) or text[i + 1] == " "):
            out = text[: i + 1]
            break
    if len(out) > limit and "; " in out:
        out = out.split("; ")[0] + " …"
    return out


def _throughput_line(tp: pl.DataFrame) -> str:
    pub = tp.filter(pl.col("published_gbps").is_not_null())
    bits = []
    if pub.height:
        bits.append(
            f"simulated against published move_pages() throughput: MAPE "
            f"{mape_pct(pub['rel_error']):.1f}% over the {pub.height} published cells of this run"
        )
    for mode, what in (("dma", "DMA offload"), ("mt", "the multi-threaded copy (not published)")):
        m = tp.filter((pl.col("mode") == mode) & pl.col("speedup").is_not_null())
        if m.height:
            bits.append(f"{what} at best {m['speedup'].max():.2f}× the CPU copy")
    if not bits:
        return ""
    s = "; ".join(bits)
    return s[0].upper() + s[1:] + "."


def _compaction_line(cp: pl.DataFrame) -> str:
    wall = cp.filter((pl.col("metric") == "wall_ms") & pl.col("rel_error").is_not_null())
    sim = compaction_cells(cp, "mean")
    bits = []
    for load in LOADS:
        if _has(sim, load):
            bits.append(f"{_signed_pct(offload_effect(sim, load)['wall_pct'])} wall time {load}")
    s = ("Offload against the CPU copy: " + ", ".join(bits)) if bits else ""
    if wall.height:
        w = wall.sort(pl.col("rel_error").abs(), descending=True).row(0, named=True)
        s += (
            f"; largest wall-time error against the published rows "
            f"{_signed_pct(w['rel_error'] * 100)} ({w['mode']})"
        )
    return s + "." if s else ""


def _series_line(series: pl.DataFrame) -> str:
    inside = int(series["inside"].sum())
    return (
        f"{inside} of the {series.height} published throughput numbers of the series lie "
        f"inside the simulated 90% interval."
    )


def _alloc_latency_line(al: pl.DataFrame) -> str:
    q = al.with_columns((pl.col("q") - 0.5).abs().alias("_d"))
    med = q.filter(pl.col("_d") == q["_d"].min()).sort("mode_order")
    if med.height == 0:
        return ""
    parts = [f"{r['mode']} {r['latency_us']:,.0f} us" for r in med.iter_rows(named=True)]
    return "Median order-9 allocation latency: " + ", ".join(parts) + "."


def study_line(name: str, summary: str | Path | None, findings: str | None = None) -> str:
    """One line (plain text) that answers study `name` from its summary Parquet; the first
    sentence of its findings paragraph `findings` for a study without a line of its own."""
    df = _read(summary)
    line = ""
    if df is not None:
        make = {
            "throughput": _throughput_line,
            "compaction": _compaction_line,
            "series": _series_line,
            "alloc_latency": _alloc_latency_line,
        }.get(name)
        line = make(df) if make else ""
    if not line and findings:
        line = _first_sentence(findings)
    return line
