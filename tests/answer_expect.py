"""The numbers of results/index.html's answer (``<data class='num' data-key=...>``),
recomputed here from the summary Parquet files with Polars, independently of
migsim.output.answer: each key family has its own formula below. Used by the browser test."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

LOADS = {"idle": ("baseline", "dma"), "busy": ("busy-baseline", "busy-dma")}
_NUMBER = re.compile(r"[−+-]?\d[\d,]*(?:\.\d+)?")


def frames(results: Path) -> dict[str, pl.DataFrame]:
    """The Parquet files the answer is computed from (those that exist)."""
    paths = {
        "throughput": results / "summary" / "throughput.parquet",
        "compaction": results / "summary" / "compaction.parquet",
        "series": results / "series" / "published.parquet",
    }
    # a what-if study's summary: the one file of runs/whatif/<study>/ (named by a digest)
    for name in ("cluster_max", "hybrid"):
        found = sorted((results / "runs" / "whatif" / name).glob("*.parquet"))
        assert len(found) <= 1, found
        if found:
            paths[name] = found[0]
    return {k: pl.read_parquet(p) for k, p in paths.items() if p.exists()}


def _dma(f) -> pl.DataFrame:
    return f["throughput"].filter((pl.col("mode") == "dma") & pl.col("speedup").is_not_null())


def _cell(f, mode: str, column: str = "mean", metric: str = "wall_ms") -> float:
    c = f["compaction"].filter((pl.col("mode") == mode) & (pl.col("metric") == metric))
    return c[column][0]


def _effect(f, load: str, what: str, column: str) -> float:
    base, dma = LOADS[load]
    if what == "wall_pct":
        return (_cell(f, dma, column) / _cell(f, base, column) - 1) * 100
    if what == "sys_pct":

        def sys_ms(m):
            return _cell(f, m, column) * _cell(f, m, column, "sys_pct")

        return (sys_ms(dma) / sys_ms(base) - 1) * 100
    if what == "hog_pct":
        hog = "hog_iterations"
        return (_cell(f, dma, column, hog) / _cell(f, base, column, hog) - 1) * 100
    raise KeyError(what)


def _no_slower(f, load: str, ch: int) -> list[int]:
    """COMPACT_CLUSTER_MAX sizes at which DMA with `ch` channels is no slower (from walls)."""
    cm = f["cluster_max"].filter(pl.col("load") == load)
    base = cm.filter(pl.col("copy") == "baseline").select(
        "cluster_max", pl.col("wall_ms").alias("b")
    )
    dma = cm.filter((pl.col("copy") == "dma") & (pl.col("channels") == ch)).join(
        base, on="cluster_max"
    )
    return sorted(dma.filter(pl.col("wall_ms") <= pl.col("b"))["cluster_max"].to_list())


def _hybrid_best(f, load: str, ch: int) -> dict:
    """The smallest threshold with the lowest wall time (from the walls)."""
    h = f["hybrid"].filter((pl.col("load") == load) & (pl.col("channels") == ch))
    low = h["wall_ms"].min()
    return h.filter(pl.col("wall_ms") == low).sort("min_batch_bytes").row(0, named=True)


def _bytes(d: pl.DataFrame, size: str) -> int:
    return int(d.filter(pl.col("folio_size") == size)["folio_bytes"][0])


def _mape(rel: pl.Series) -> float:
    return float(rel.abs().mean()) * 100


def expected(key: str, f: dict[str, pl.DataFrame]):
    """The value the answer's number `key` must have."""
    k = key.split(".")
    if k[0] == "throughput":
        d = _dma(f)
        if k[1] == "folio":
            assert k[2] in d["folio_size"].to_list()
            return k[2]
        if k[1] == "first_channels":  # throughput.first_channels.<lo>..<hi> (folio sizes)
            ends = ".".join(k[2:]).split("..")
            lo, hi = _bytes(d, ends[0]), _bytes(d, ends[-1])
            firsts = set()
            for _, cells in d.filter(pl.col("folio_bytes").is_between(lo, hi)).group_by(
                "folio_bytes"
            ):
                first = cells.filter(pl.col("speedup") > 1)["channels"].min()
                # wins at every channel count from the first one up
                assert cells.filter(pl.col("channels") >= first)["speedup"].min() > 1
                firsts.add(int(first))
            assert len(firsts) == 1, firsts
            return firsts.pop()
        if k[1] == "win_channels":
            c = d.filter((pl.col("folio_size") == k[2]) & (pl.col("channels") == int(k[3])))
            assert c["speedup"][0] > 1
            return int(k[3])
        best = d.sort("speedup", descending=True).row(0, named=True)
        return {
            "speedup": best["speedup"],
            "folio": best["folio_size"],
            "channels": best["channels"],
        }[k[2]]
    if k[0] == "compaction":
        if k[1] == "channels":
            return int(f["compaction"].filter(pl.col("mode") == "dma")["channels"][0])
        if k[1] in LOADS:
            column = "published" if k[-1] == "published" else "mean"
            return _effect(f, k[1], k[2], column)
        return _cell(f, k[1])  # compaction.<mode>.wall_ms
    if k[0] == "break_even":
        if k[1] == "channels":
            return int(k[2])
        if k[1] == "none":  # break_even.none.channels.<ch>.<load>[+<load>]
            for load in k[4].split("+"):
                assert _no_slower(f, load, int(k[3])) == []
            return int(k[3])
        if k[1] == "largest":
            return int(f["cluster_max"]["cluster_max"].max())
        return _no_slower(f, k[1], int(k[2]))[0]
    if k[0] == "hybrid":
        if k[1] == "channels":
            return int(k[2])
        b = _hybrid_best(f, k[1], int(k[2]))
        if k[3] == "threshold":
            return b["threshold"]
        return (b["wall_ms"] / b["baseline_wall_ms"] - 1) * 100
    if k[0] == "model":
        if k[1] == "throughput":
            s = f["series"].filter(pl.col("fitted") == (k[2] == "fitted"))
            return s.height if k[3] == "cells" else _mape(s["error_pct"] / 100)
        w = f["compaction"].filter(
            (pl.col("metric") == "wall_ms") & pl.col("published").is_not_null()
        )
        w = w.filter((pl.col("mode") == "baseline") == (k[2] == "fitted"))
        return w.height if k[3] == "cells" else _mape(w["mean"] / w["published"] - 1)
    raise KeyError(key)


def required_prefixes(f: dict[str, pl.DataFrame]) -> list[str]:
    """Key prefixes the answer must contain, given which Parquet files and values exist."""
    need = []
    if "throughput" in f and _dma(f).height:
        need.append("throughput.best.speedup")
    if "compaction" in f:
        need += ["compaction.idle.wall_pct", "compaction.busy.wall_pct", "compaction.busy.hog_pct"]
        if f["compaction"].filter(pl.col("metric") == "wall_ms")["published"].null_count() == 0:
            need += ["compaction.idle.wall_pct.published", "model.compaction.fitted.mape"]
            need.append("model.compaction.predicted.mape")
    if "series" in f:
        need += ["model.throughput.fitted.mape", "model.throughput.predicted.mape"]
    if "cluster_max" in f:
        need.append("break_even.")
    if "hybrid" in f:
        need.append("hybrid.")
    return need


def matches(text: str, value) -> bool:
    """`text` (as printed) is `value` at the precision printed (a string as written)."""
    if isinstance(value, str):
        return text == value
    m = _NUMBER.search(text)
    if m is None:
        return False
    t = m.group(0).replace("−", "-").replace(",", "")
    decimals = len(t.split(".")[1]) if "." in t else 0
    return abs(float(t) - value) <= 0.5 * 10**-decimals + 1e-9


def numbers_in(text: str) -> list[str]:
    """Numbers and size labels in a text (as a reader sees them)."""
    return re.findall(r"\d[\d,]*(?:\.\d+)?", text)
