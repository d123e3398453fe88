"""migsim.output.figures: the chart builders (pure DataFrame -> chart) and the saved files."""

from __future__ import annotations

import itertools
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import polars as pl
import pytest
from pipeline_util import PNG_SIGNATURE, ink_fraction
from test_tables import REF_CP, REF_TP, cp_row, tp_row

import migsim.studies as studies
from migsim.output import figures
from migsim.studies import compaction as compaction_study
from migsim.studies import throughput as throughput_study
from migsim.studies.compaction import COMPACTION_RUNS
from migsim.studies.throughput import THROUGHPUT_RUNS

FOLIOS = ["4K", "16K", "2M"]

# URLs that appear in the inlined Vega bundle or spec as identifiers, never fetched: XML
# namespaces, the Vega-Lite schema id, links in error messages and the editor action (off).
URL_IDENTIFIERS = re.compile(
    r"https?://(www\.w3\.org/|vega\.github\.io/|github\.com/vega/|json-schema\.org/)"
)

# the figures of the published experiments drawn by the generic rules (figure_<name>)
BUILDERS = {
    name: studies.figure_builder(name)
    for name, exp in studies.figure_experiments().items()
    if exp.rule is None
}


@pytest.fixture(scope="module")
def tp_summary() -> pl.DataFrame:
    rows = []
    gbps = {"4K": 3.0, "16K": 5.0, "2M": 10.0}
    for f in FOLIOS:
        rows += [tp_row("baseline", f, gbps[f] + d, trial=i) for i, d in enumerate((-0.1, 0.1))]
        for ch in (1, 4):
            rows += [
                tp_row("dma", f, gbps[f] * ch * 0.6 + d, channels=ch, trial=i)
                for i, d in enumerate((-0.2, 0.2))
            ]
        rows += [tp_row("mt", f, gbps[f] * 1.5, threads=2)]
    return throughput_study.summarise_throughput(
        THROUGHPUT_RUNS.frame(rows), throughput_study.load_reference_throughput(REF_TP)
    )


@pytest.fixture(scope="module")
def cp_summary() -> pl.DataFrame:
    runs = COMPACTION_RUNS.frame(
        [
            cp_row("baseline", 16000.0, pages=4_500_000, sys=99.5, idle=0.5),
            cp_row("dma", 18000.0, pages=4_600_000, sys=76.0, idle=24.0),
            cp_row("busy-baseline", 33000.0, hog=6.2e10, user=50.0, sys=49.9, idle=0.1),
            cp_row("busy-dma", 32000.0, hog=6.6e10, user=56.0, sys=43.9, idle=0.1),
        ]
    )
    return compaction_study.summarise_compaction(
        runs, compaction_study.load_reference_compaction(REF_CP)
    )


def _walk(obj):
    """Every dict inside a Vega-Lite spec."""
    if isinstance(obj, dict):
        yield obj
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


def _datasets(spec: dict) -> list[dict]:
    return [row for rows in spec.get("datasets", {}).values() for row in rows]


def _encodings(spec: dict, channel: str) -> list[dict]:
    return [
        d["encoding"][channel]
        for d in _walk(spec)
        if isinstance(d.get("encoding"), dict) and channel in d["encoding"]
    ]


def test_throughput_chart(tp_summary):
    spec = throughput_study.throughput_chart(tp_summary).to_dict()  # to_dict validates the schema
    xs = [e for e in _encodings(spec, "x") if e.get("field") == "folio_size"]
    assert xs and all(e["sort"] == FOLIOS for e in xs)  # 4K..2M in size order, not A-Z
    titles = [e.get("title") for e in _encodings(spec, "y") if e.get("title")]
    assert any("GB/s" in t for t in titles)
    assert any(e.get("title") == "folio size" for e in xs)
    data = _datasets(spec)
    published = [r for r in data if r.get("source") == "published"]
    # published baseline 4K of the reference table is overlaid as such
    assert any(
        r["series"] == "CPU copy" and r["folio_size"] == "4K" and r["gbps"] == 3.55
        for r in published
    )
    sim = [
        r for r in data if r.get("source") == "simulated" and r["mode"] == "dma" and r["lanes"] == 4
    ]
    assert {r["folio_size"] for r in sim} == set(FOLIOS)
    # error bars span mean ± sd (sd of 2 trials at ±0.2 is 0.2828...)
    r = next(r for r in sim if r["folio_size"] == "2M")
    assert r["hi"] - r["lo"] == pytest.approx(2 * 0.2 * 2**0.5)
    # one panel per copier, each with its own colour legend; MT has no published cell
    panels = [c["title"] for c in spec["hconcat"]]
    assert panels == ["DMA offload (dcbm)", "multi-threaded copy (not published)"]
    assert spec["resolve"]["scale"]["color"] == "independent"
    legends = {e.get("title") for e in _encodings(spec, "color") if e.get("title")}
    assert legends == {"DMA channels", "copy threads"}
    # every line is labelled at its end (the largest folio size)
    labels = {r["label"] for r in data if "label" in r and r["folio_size"] == "2M"}
    assert labels == {"CPU copy", "1 ch", "4 ch", "2 thr"}


def test_line_end_labels_move_apart_where_lines_crowd():
    # three lines ending within 1% of each other on a 300 px log axis over 1..100 GB/s
    ys = figures._spread_labels([10.0, 10.05, 10.1, 50.0], 1.0, 100.0, 300)
    gap = figures.LABEL_GAP_PX / 300 * 2  # decades per label
    logs = sorted(math.log10(y) for y in ys)
    assert all(b - a >= gap - 1e-9 for a, b in itertools.pairwise(logs))
    # the crowded group is centred on its lines
    assert sum(logs[:3]) / 3 == pytest.approx(sum(math.log10(v) for v in (10.0, 10.05, 10.1)) / 3)
    assert ys[3] == pytest.approx(50.0)  # a label far from the others stays at its line


def test_speedup_heatmap_prints_values(tp_summary):
    spec = throughput_study.speedup_heatmap(tp_summary).to_dict()
    data = _datasets(spec)
    cell = next(
        r
        for r in data
        if r["panel"] == "DMA, simulated" and r["lanes"] == 4 and r["folio_size"] == "2M"
    )
    assert cell["value"] == pytest.approx(24.0 / 10.0)  # 10 * 4 * 0.6 over the baseline's 10
    pub = next(
        r
        for r in data
        if r["panel"] == "DMA, published" and r["lanes"] == 4 and r["folio_size"] == "2M"
    )
    assert pub["value"] == pytest.approx(27.16 / 10.88)
    marks = [d.get("mark") for d in _walk(spec) if "mark" in d]
    assert any((m if isinstance(m, str) else m.get("type")) == "text" for m in marks)
    assert "format(datum.value, '.2f')" in json.dumps(spec)


def test_parity_chart_title_has_the_mape(tp_summary):
    pub = tp_summary.filter(pl.col("published_gbps").is_not_null())
    expected = sum(
        abs(m / p - 1) for m, p in zip(pub["mean_gbps"], pub["published_gbps"], strict=True)
    )
    expected = 100 * expected / pub.height
    spec = throughput_study.parity_chart(tp_summary).to_dict()
    assert f"MAPE {expected:.1f}% over {pub.height} cells" in spec["title"]["text"]
    lines = [
        d
        for d in _walk(spec)
        if d.get("mark", {}) == {"type": "line", "color": "#666666", "strokeDash": [4, 4]}
    ]
    assert lines, "no y = x line"
    assert any("published" in (e.get("title") or "") for e in _encodings(spec, "x"))
    band = next(r for r in _datasets(spec) if "b_lo" in r)
    assert band["b_lo"] == pytest.approx(0.75 * band["a"]) and band["b_hi"] == pytest.approx(
        1.25 * band["a"]
    )


def test_parity_chart_labels_the_cells_outside_the_tolerance(tp_summary):
    worse = tp_summary.with_columns(
        pl.when(
            (pl.col("mode") == "dma") & (pl.col("folio_size") == "4K") & (pl.col("channels") == 4)
        )
        .then(pl.col("published_gbps") * 1.6)
        .otherwise(pl.col("mean_gbps"))
        .alias("mean_gbps")
    ).with_columns((pl.col("mean_gbps") / pl.col("published_gbps") - 1).alias("rel_error"))
    spec = throughput_study.parity_chart(worse).to_dict()
    labels = {r["label"] for r in _datasets(spec) if "label" in r}
    want = set()
    for r in worse.filter(pl.col("published_gbps").is_not_null()).iter_rows(named=True):
        diff = abs(r["mean_gbps"] - r["published_gbps"])
        if diff > max(2 * (r["published_sd_gbps"] or 0), 0.25 * r["published_gbps"]):
            name = "baseline" if r["mode"] == "baseline" else f"{r['channels']} ch"
            want.add(f"{name} {r['folio_size']} ({100 * r['rel_error']:+.0f}%)")
    assert "4 ch 4K (+60%)" in want and labels == want
    assert f"{len(want)} cells outside" in spec["title"]["subtitle"]


def test_compaction_chart_shows_published_beside_simulated(cp_summary):
    spec = compaction_study.compaction_chart(cp_summary).to_dict()
    data = _datasets(spec)
    walls = {(r["mode"], r["source"]): r["v"] for r in data if r.get("metric") == "wall_ms"}
    assert walls[("dma", "simulated")] == pytest.approx(18000.0)  # ms, as the tables
    assert walls[("dma", "published")] == pytest.approx(18887.0)
    hogs = {(r["mode"], r["source"]) for r in data if r.get("metric") == "hog_iterations"}
    assert hogs == {
        (m, s) for m in ("busy-baseline", "busy-dma") for s in ("simulated", "published")
    }
    # the published rows leave 0.3-0.8 points to none of user, sys and idle (irq, softirq);
    # these simulated rows none
    states = {r["state"] for r in data if "state" in r}
    assert states == {"user", "sys", "irq, softirq and other", "idle"}
    for bar in {r["bar"] for r in data if "bar" in r}:
        shares = [r["value"] for r in data if r.get("bar") == bar]
        assert sum(shares) == pytest.approx(100.0) and min(shares) > 0, bar
    cpu_x = [e for e in _encodings(spec, "x") if e.get("title") == "CPU time (%)"]
    assert cpu_x[0]["scale"]["domain"] == [0, 100]
    # every axis leaves room above its largest bar
    for panel, metric in zip(
        spec["hconcat"][:3], ("wall_ms", "pages_migrated", "hog_iterations"), strict=True
    ):
        y = panel["layer"][0]["encoding"]["y"]
        top = max(r["hi"] for r in data if r.get("metric") == metric)
        assert y["scale"]["domain"][1] > 1.1 * top, metric
    # errors above the simulated bars; the fitted cell marked as such, misfits flagged
    errors = {(r["mode"], r["metric"]): r for r in data if r.get("error") is not None}
    assert errors[("baseline", "wall_ms")]["error"] == "fitted"
    assert errors[("dma", "wall_ms")]["error"] == "-4.7%"  # 18000 / 18887 - 1
    assert not errors[("dma", "wall_ms")]["misfit"]  # within 10%
    text = json.dumps(spec)
    for title in ("wall time (ms)", "CPU time (%)", "CPU-hog iterations (billions)"):
        assert title in text
    assert "wall time (s)" not in text


def test_compaction_misfit_is_red():
    runs = COMPACTION_RUNS.frame([cp_row("dma", 25000.0, pages=4_600_000, sys=76.0, idle=24.0)])
    s = compaction_study.summarise_compaction(
        runs, compaction_study.load_reference_compaction(REF_CP)
    )
    data = _datasets(compaction_study.compaction_chart(s).to_dict())
    wall = next(r for r in data if r.get("metric") == "wall_ms" and r.get("error"))
    assert wall["error"] == "+32.4%" and wall["misfit"]  # 25000 / 18887 - 1, beyond 10%
    assert figures.MISFIT_COLOUR in json.dumps(compaction_study.compaction_chart(s).to_dict())


def test_builders_accept_empty_summaries():
    empty_tp = pl.DataFrame(schema=throughput_study.THROUGHPUT_SUMMARY.polars_schema())
    empty_cp = pl.DataFrame(schema=compaction_study.COMPACTION_SUMMARY.polars_schema())
    for name, builder in BUILDERS.items():
        spec = builder(empty_cp if name == "compaction" else empty_tp).to_dict()
        assert "no data" in json.dumps(spec)


def check_figure_files(stem: Path) -> None:
    """The three files of one figure: SVG is XML, PNG is a valid, non-blank image, HTML holds
    the inlined spec and the Vega bundle and loads nothing from the network."""
    svg = stem.with_suffix(".svg").read_text()
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(list(root.iter())) > 50  # drawn marks, not an empty canvas
    png = stem.with_suffix(".png").read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    assert ink_fraction(png) > 0.01  # more than 1% of the pixels are not background
    html = stem.with_suffix(".html").read_text()
    m = re.search(r"const spec = (\{.*?\});\n", html, flags=re.S)
    assert m, "no inlined spec"
    spec = json.loads(m.group(1))
    assert spec.get("datasets") or spec.get("data")
    assert "vegaEmbed" in html and "vega-embed" in html  # the bundle itself is inlined
    assert not re.search(r"<script[^>]+src=", html), "external script"
    assert not re.search(r"<link[^>]+href=", html), "external stylesheet"
    urls = re.findall(r"https?://[^\s\"'<>()\\]+", html)
    fetched = [u for u in urls if not URL_IDENTIFIERS.match(u)]
    assert not fetched, f"network URLs in {stem.name}.html: {fetched[:5]}"


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tp_summary, cp_summary) -> tuple[Path, dict]:
    """Every figure of BUILDERS drawn once and saved by save_chart with its defaults into one
    directory, read by the tests below: (the directory, the charts by name)."""
    out = tmp_path_factory.mktemp("saved")
    charts = {}
    for name, builder in BUILDERS.items():
        charts[name] = builder(cp_summary if name == "compaction" else tp_summary)
        figures.save_chart(charts[name], out / name)
    return out, charts


def test_save_chart_writes_three_formats(saved):
    tmp_path, charts = saved
    for name, chart in charts.items():
        check_figure_files(tmp_path / name)
        spec = json.loads(
            re.search(
                r"const spec = (\{.*?\});\n", (tmp_path / f"{name}.html").read_text(), re.S
            ).group(1)
        )
        assert spec == chart.to_dict()  # the HTML holds exactly this chart
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{n}.{ext}" for n in BUILDERS for ext in ("html", "svg", "png")
    )


def test_saved_files_are_deterministic(tmp_path, tp_summary):
    chart = throughput_study.parity_chart(tp_summary)
    figures.save_chart(chart, tmp_path / "a")
    figures.save_chart(throughput_study.parity_chart(tp_summary), tmp_path / "b")
    for ext in ("html", "svg", "png"):
        assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes()


def test_a_prebuilt_bundle_gives_the_same_files(tmp_path, tp_summary):
    """The pipeline builds the script the offline HTML inlines once (vega_bundle) and every
    figure job reads it: the files are byte-identical to a figure that builds it itself; a
    bundle built for other versions is not used."""
    chart = throughput_study.speedup_heatmap(tp_summary)
    figures.save_chart(chart, tmp_path / "own")
    bundle = tmp_path / "vega-bundle.js"
    figures.write_javascript_bundle(bundle)
    figures.save_chart(chart, tmp_path / "shared", bundle=bundle)
    assert (tmp_path / "own.html").read_bytes() == (tmp_path / "shared.html").read_bytes()
    assert "vega-embed" in bundle.read_text()[:200]
    stale = tmp_path / "stale.js"
    stale.write_text("// vega-embed bundle: vl-convert 0.0.0, vega-lite 0\nBROKEN")
    figures.save_chart(chart, tmp_path / "fallback", bundle=stale)
    assert (tmp_path / "fallback.html").read_bytes() == (tmp_path / "own.html").read_bytes()


def test_png_is_altairs_own(saved):
    """save_chart rasterises the SVG it drew instead of rendering the chart again for the PNG:
    the PNG (at save_chart's default scale, 2) is byte for byte what
    chart.save(format="png", scale_factor=2.0) writes, for every figure (the files of the
    `saved` fixture). (The SVGs of two renders in one process can differ in their gradient ids,
    which Vega numbers per process; the PNG does not depend on them.)"""
    import io

    tmp_path, charts = saved
    for name, chart in charts.items():
        png = io.BytesIO()
        chart.save(png, format="png", scale_factor=2.0)
        assert (tmp_path / f"{name}.png").read_bytes() == png.getvalue(), name
