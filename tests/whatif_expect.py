"""The numbers each what-if findings paragraph must state, in order, computed here from a
summary Parquet's columns (independently of the templates in the study modules, migsim/studies/), and
the check that compares them with the numbers parsed from the text.

Used by tests/test_whatif.py (small studies) and tests/test_whatif_pipeline.py (the files the
workflow wrote)."""

from __future__ import annotations

import re

import polars as pl

LOADS = ("idle", "busy")
_TOKEN = re.compile(r"\d+(?:\.\d+)?(?:[KMG](?![a-z]))?")


def tokens(text: str) -> list[str]:
    """Numbers (and size labels such as 4K, 2M) in `text`, in order."""
    return _TOKEN.findall(text)


def check(text: str, expected: list) -> None:
    """Every number in `text`, in order, equals `expected` (a float at the precision printed,
    an int exactly, a str such as a size label as written)."""
    got = tokens(text)
    assert len(got) == len(expected), (got, expected, text)
    for g, e in zip(got, expected, strict=True):
        if isinstance(e, str):
            assert g == e, (g, e, text)
        elif isinstance(e, int):
            assert float(g) == e, (g, e, text)
        else:
            decimals = len(g.split(".")[1]) if "." in g else 0
            assert abs(float(g) - e) <= 0.5 * 10**-decimals + 1e-9, (g, e, text)


def _loads(df: pl.DataFrame) -> list[str]:
    present = set(df["load"].drop_nulls().to_list())
    return [x for x in LOADS if x in present]


def _pct(a: float, b: float) -> float:
    return (a / b - 1) * 100


def _label(threshold: str):
    """A threshold label as it appears among the tokens: '0' is a number, '64K' a label."""
    return 0 if threshold == "0" else threshold


def _range(lo: float, hi: float, digits: int) -> list:
    return [lo] if round(lo, digits) == round(hi, digits) else [lo, hi]


def expected_latency(df: pl.DataFrame) -> list:
    out: list = []
    knee_pct = df["knee_pct"][0]
    keys = df.select("folio_bytes", "folio_size", "mode", "channels").unique()
    for fb, fs, mode, ch in keys.sort(["folio_bytes", "mode", "channels"], nulls_last=False).rows():
        cell = df.filter(
            (pl.col("folio_bytes") == fb)
            & (pl.col("mode") == mode)
            & pl.col("channels").eq_missing(ch)
        ).sort("batch_limit_pages")
        a, z = cell.row(0, named=True), cell.row(-1, named=True)
        best = cell["throughput_gbps"].max()
        k = cell.filter(pl.col("throughput_gbps") >= best * knee_pct / 100).row(0, named=True)
        assert k["knee"] == 1 and cell["knee"].sum() == 1
        pct = _pct(z["total_ms"], a["total_ms"])
        assert abs(z["total_vs_smallest_pct"] - pct) < 1e-9 * max(1.0, abs(pct))
        assert abs(z["first_folio_x"] - z["first_folio_us"] / a["first_folio_us"]) < 1e-9
        out += [fs] + ([] if mode == "baseline" else [ch])
        out += [a["batch_limit_pages"], z["batch_limit_pages"], a["total_ms"], z["total_ms"]]
        out += [abs(pct), a["first_folio_us"], z["first_folio_us"], z["first_folio_x"]]
        out += [knee_pct, k["batch_limit_pages"], k["throughput_gbps"], k["first_folio_us"]]
    return out


def expected_engine_class(df: pl.DataFrame) -> list:
    out: list = []
    tp = df.filter(pl.col("part") == "throughput")
    cal = tp.filter(pl.col("latency_scale") == 1.0).select(
        "folio_bytes",
        "channels",
        pl.col("wall_ms").alias("cal_wall"),
        pl.col("throughput_gbps").alias("cal_gbps"),
    )
    for scale in sorted(set(tp["latency_scale"].to_list()) - {1.0}, reverse=True):
        ll = tp.filter(pl.col("latency_scale") == scale).join(cal, on=["folio_bytes", "channels"])
        assert ((ll["cal_wall"] / ll["wall_ms"] - ll["gain"]).abs() < 1e-12).all()
        b = ll.sort(["gain", "folio_bytes", "channels"], descending=[True, False, False])
        b = b.row(0, named=True)
        top = ll["folio_bytes"].max()
        big = ll.filter(pl.col("folio_bytes") == top)
        out += [scale, b["gain"], b["folio_size"], b["channels"], b["throughput_gbps"]]
        out += [b["cal_gbps"], big["gain"].max(), big["folio_size"][0]]
    cp = df.filter(pl.col("part") == "compaction")
    if cp.height == 0:
        return out
    scales = sorted(set(cp["latency_scale"].to_list()), reverse=True)

    def tag(scale: float) -> list:  # "latency x<scale>" carries the scale; "calibrated" nothing
        return [] if scale == 1.0 else [scale]

    for load in _loads(cp):
        cells = cp.filter(pl.col("load") == load)
        ch0 = int(cells["channels"].min())
        out.append(ch0)
        for scale in scales:
            r = cells.filter((pl.col("latency_scale") == scale) & (pl.col("channels") == ch0))
            out += [r["wall_ms"][0], *tag(scale)]
        base = cells["baseline_wall_ms"][0]
        out.append(base)
        f = cells.sort(["wall_ms", "latency_scale", "channels"], descending=[False, True, False])
        f = f.row(0, named=True)
        assert abs(f["speedup"] - base / f["wall_ms"]) < 1e-12
        out += [*tag(f["latency_scale"]), f["channels"], f["wall_ms"], f["speedup"]]
        for scale in scales:
            ok = cells.filter((pl.col("latency_scale") == scale) & (pl.col("wall_ms") <= base))
            out += tag(scale) + ([int(ok["channels"].min())] if ok.height else [])
    return out


def expected_hybrid(df: pl.DataFrame) -> list:
    out: list = []
    for load in _loads(df):
        for ch in sorted(df.filter(pl.col("load") == load)["channels"].unique().to_list()):
            cells = df.filter((pl.col("load") == load) & (pl.col("channels") == ch))
            freed = cells["baseline_sys_ms"] - cells["wall_ms"] * cells["sys_pct"] / 100
            assert ((freed - cells["cpu_freed_ms"]).abs() < 1e-9).all()
            b = cells.sort(["wall_ms", "min_batch_bytes"]).row(0, named=True)
            assert b["best"] == 1 and cells["best"].sum() == 1
            t0 = cells.filter(pl.col("min_batch_bytes") == 0)["wall_ms"][0]
            out += [ch, _label(b["threshold"]), b["wall_ms"], t0, b["baseline_wall_ms"]]
            if b["dma_copies"]:
                pct = b["cpu_freed_ms"] / b["baseline_sys_ms"] * 100
                out += [b["dma_copies"], abs(b["cpu_freed_ms"]), abs(pct)]
                if load == "busy":
                    out.append(abs(_pct(b["hog_iterations"], b["baseline_hog_iterations"])))
            m = cells.sort(["cpu_freed_ms", "min_batch_bytes"], descending=[True, False])
            m = m.row(0, named=True)
            if m["min_batch_bytes"] != b["min_batch_bytes"]:
                out += [m["cpu_freed_ms"], _label(m["threshold"]), m["wall_ms"]]
                if load == "busy":
                    out.append(abs(_pct(m["hog_iterations"], m["baseline_hog_iterations"])))
    return out


def expected_cluster_max(df: pl.DataFrame) -> list:
    out: list = []
    sizes = sorted(df["cluster_max"].unique().to_list())
    lo, hi = sizes[0], sizes[-1]
    base = df.filter(pl.col("copy") == "baseline")
    dma = df.filter(pl.col("copy") == "dma")
    for load in _loads(df):
        bl = base.filter(pl.col("load") == load).sort("cluster_max")
        for ch in sorted(dma.filter(pl.col("load") == load)["channels"].unique().to_list()):
            cells = dma.filter((pl.col("load") == load) & (pl.col("channels") == ch))
            cells = cells.sort("cluster_max")
            assert cells["baseline_wall_ms"].to_list() == bl["wall_ms"].to_list()
            r0, r1 = cells.row(0, named=True), cells.row(-1, named=True)
            out += [ch, abs(_pct(r0["wall_ms"], bl["wall_ms"][0])), lo]
            out += [r0["wall_ms"], bl["wall_ms"][0]]
            no_slower = cells.filter(pl.col("wall_ms") <= pl.col("baseline_wall_ms"))
            assert cells["break_even"].sum() == min(no_slower.height, 1)
            if no_slower.height:
                be = no_slower.row(0, named=True)
                assert be["break_even"] == 1
                if be["cluster_max"] == lo:
                    out.append(lo)
                else:
                    out += [be["cluster_max"], be["wall_ms"], be["baseline_wall_ms"]]
            else:
                out += [hi, abs(_pct(r1["wall_ms"], bl["wall_ms"][-1])), hi]
            if load == "busy":
                h0 = abs(_pct(r0["hog_iterations"], bl["hog_iterations"][0]))
                h1 = abs(_pct(r1["hog_iterations"], bl["hog_iterations"][-1]))
                out += [h0, lo, h1, hi]
            else:
                out += [r0["idle_pct"], lo, r1["idle_pct"], hi]
    ref = "idle" if "idle" in _loads(df) else "busy"
    b = base.filter(pl.col("load") == ref).sort("cluster_max")
    out += [lo, hi]
    for col in ("migrate_calls", "pages_migrated"):  # "leaves the ... at a" when unchanged
        a, z = b[col][0], b[col][-1]
        out += [a] if a == z else [a, z]
    after = (b["pages_after_capture"][0], b["pages_after_capture"][-1])
    if after != (0, 0):  # else "none of them after the allocation's block was already free"
        out += list(after)
    fast = b.sort(["wall_ms", "cluster_max"]).row(0, named=True)
    slow = b.sort(["wall_ms", "cluster_max"], descending=[True, False]).row(0, named=True)
    out += [fast["cluster_max"], fast["wall_ms"], slow["cluster_max"], slow["wall_ms"]]
    return out


def expected_fragmentation(df: pl.DataFrame) -> list:
    copy = "baseline" if "baseline" in df["copy"].to_list() else df["copy"][0]
    df = df.filter(pl.col("copy") == copy)
    assert (df["success_pct"] == df["alloc_success"] / df["allocations"] * 100).all()
    out: list = []
    ppa_spread, wall_spread = [], []
    for fr in sorted(df["free_ratio"].unique().to_list()):
        c = df.filter(pl.col("free_ratio") == fr)
        ppa = [p / s for p, s in zip(c["pages_migrated"], c["alloc_success"], strict=True) if s]
        succ = (c["alloc_success"] / c["allocations"] * 100).to_list()
        wall = c["wall_ms"].to_list()
        out.append(fr)
        if ppa:
            out += _range(min(ppa), max(ppa), 0)
            ppa_spread.append(max(ppa) - min(ppa))
        out += _range(min(succ), max(succ), 1) + _range(min(wall), max(wall), 1)
        wall_spread.append((max(wall) / min(wall) - 1) * 100)
    if df["pattern"].n_unique() > 1:
        spread = max(ppa_spread, default=0.0)
        wall = max(wall_spread)
        out += ([] if round(spread) == 0 else [spread]) + ([] if round(wall, 1) == 0 else [wall])
    ok = df.filter(pl.col("alloc_success") > 0).with_columns(
        (pl.col("pages_migrated") / pl.col("alloc_success")).alias("ppa")
    )
    if ok.height:
        r = ok.sort(["ppa", "pattern", "free_ratio"], descending=[True, False, False])
        r = r.row(0, named=True)
        out += [r["free_ratio"], r["ppa"], r["wall_ms"] / r["alloc_success"]]
    return out


EXPECTED = {
    "cluster_max": expected_cluster_max,
    "engine_class": expected_engine_class,
    "hybrid": expected_hybrid,
    "fragmentation": expected_fragmentation,
    "latency": expected_latency,
}
