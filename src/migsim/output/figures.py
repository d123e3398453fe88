"""Altair figure helpers every study shares, and ``save_chart`` that
writes a chart as offline HTML (Vega bundle inlined), SVG and PNG through vl-convert.

The figures of each study are pure builders in its study module (the published experiments'
in ``migsim.studies.throughput`` and ``.compaction``); folio sizes are ordered by size and
labelled 4K..2M; every axis title carries its unit.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import altair as alt
import polars as pl

from migsim.atomic import atomic_write_bytes, atomic_write_text
from migsim.output.style import BASELINE_COLOUR, PALETTE, WHATIF_H, WHATIF_W  # noqa: F401
from migsim.units import format_size

PUBLISHED_DX = 7  # px: published marks beside the simulated ones of the same folio size
SOURCE_COLOURS = {"simulated": "#4c78a8", "published": "#9d9d9d"}

# Offline HTML: no "open in editor" action (the only link that would leave the page).
# Rendered as SVG (searchable text, crisp when zoomed).
EMBED_OPTIONS = {
    "renderer": "svg",
    "actions": {"export": True, "source": True, "compiled": False, "editor": False},
}


def _folio_order(df: pl.DataFrame) -> list[str]:
    sizes = df.select("folio_bytes").unique().sort("folio_bytes")["folio_bytes"].to_list()
    return [format_size(b) for b in sizes]


def _empty(title: str) -> alt.Chart:
    """A chart that says there is nothing to draw (keeps the pipeline's outputs complete)."""
    df = pl.DataFrame({"text": [f"{title}: no data in this configuration"]})
    return (
        alt.Chart(df, title=title)
        .mark_text(size=14)
        .encode(text="text:N")
        .properties(width=400, height=60)
    )


def _parity_axes(lo: float, hi: float, simulated: str):
    """Log scale over [lo, hi], the published (x) and simulated (y, column `simulated`) axes
    and the dashed y = x line of a parity plot."""
    scale = alt.Scale(type="log", domain=[lo, hi])
    x = alt.X("published_gbps:Q", scale=scale, title="published throughput (GB/s, log)")
    y = alt.Y(f"{simulated}:Q", scale=scale, title="simulated throughput (GB/s, log)")
    diag = (
        alt.Chart(pl.DataFrame({"a": [lo, hi]}))
        .mark_line(color="#666666", strokeDash=[4, 4])
        .encode(x=alt.X("a:Q", scale=scale), y=alt.Y("a:Q", scale=scale))
    )
    return scale, x, y, diag


# A simulated throughput cell reproduces the published one when it lies within max(2 published
# sd, 25%) of it (the v4 reproduction criterion of issue 11)
PARITY_TOLERANCE = 0.25
MISFIT_COLOUR = "#c0392b"  # labels of the cells (bars) outside the tolerance


def _tolerance_band(lo: float, hi: float, scale: alt.Scale) -> alt.Chart:
    """The shaded band y = x · (1 ± PARITY_TOLERANCE) of a parity plot over [lo, hi]."""
    band = pl.DataFrame({"a": [lo, hi]}).with_columns(
        (pl.col("a") * (1 - PARITY_TOLERANCE)).alias("b_lo"),
        (pl.col("a") * (1 + PARITY_TOLERANCE)).alias("b_hi"),
    )
    return (
        alt.Chart(band)
        .mark_area(color="#4c78a8", opacity=0.08)
        .encode(x=alt.X("a:Q", scale=scale), y=alt.Y("b_lo:Q", scale=scale), y2="b_hi:Q")
    )


def _bundle_key() -> str:
    """The first line of a bundle file: the versions the bundle was built for."""
    import vl_convert as vlc
    from altair.utils._importers import vl_version_for_vl_convert

    return f"// vega-embed bundle: vl-convert {vlc.__version__}, vega-lite {vl_version_for_vl_convert()}\n"


def write_javascript_bundle(path: str | os.PathLike) -> None:
    """Build vega-embed with Vega and Vega-Lite as one script (what an offline HTML figure
    inlines; vl-convert takes seconds to build it, once per process) and write it to `path`,
    headed by the versions it is for. The pipeline builds it once for all its figures."""
    import vl_convert as vlc
    from altair.utils._importers import vl_version_for_vl_convert

    script = vlc.javascript_bundle(vl_version=vl_version_for_vl_convert())
    atomic_write_text(path, _bundle_key() + script)


class _InlineWithBundle:
    """Altair's inline HTML template with a prebuilt bundle (the template argument of
    Chart.save takes any object with a jinja-style render())."""

    def __init__(self, script: str):
        self.script = script

    def render(self, **kwargs) -> str:
        from altair.utils.html import TEMPLATES

        return TEMPLATES["inline"].render(vegaembed_script=self.script, **kwargs)


def _bundle_template(path: str | os.PathLike) -> _InlineWithBundle | None:
    """The template of a bundle file built for the running versions (None if it is not)."""
    text = Path(path).read_text()
    key = _bundle_key()
    return _InlineWithBundle(text[len(key) :]) if text.startswith(key) else None


def save_chart(
    chart: alt.TopLevelMixin,
    stem: str | os.PathLike,
    *,
    png_scale: float = 2.0,
    bundle: str | os.PathLike | None = None,
) -> None:
    """Write `stem`.html (Vega, Vega-Lite and vega-embed inlined: opens offline), `stem`.svg and
    `stem`.png, each through a temporary file renamed into place. `bundle`: a file written by
    write_javascript_bundle() to inline instead of building the script again (the same HTML;
    ignored when it was built for other versions)."""
    from altair.utils.mimebundle import spec_to_mimebundle

    stem = Path(stem)
    template = None if bundle is None else _bundle_template(bundle)
    # the chart's Vega-Lite spec once for the HTML and the SVG: what Chart.save(format=...)
    # does for each (altair.utils.save: the spec with every data set inlined, then
    # spec_to_mimebundle), without validating the spec against the schema twice (a sixth of a
    # figure job's CPU time); the same bytes
    with alt.data_transformers.enable("default"), alt.data_transformers.disable_max_rows():
        spec = chart.to_dict(context={"pre_transform": False})
    versions = {
        "mode": "vega-lite",
        "vega_version": alt.VEGA_VERSION,
        "vegalite_version": alt.VEGALITE_VERSION,
        "vegaembed_version": alt.VEGAEMBED_VERSION,
    }
    html = spec_to_mimebundle(
        spec=spec,
        format="html",
        embed_options=EMBED_OPTIONS,
        json_kwds={},
        template="inline" if template is None else template,
        **versions,
    )["text/html"]
    atomic_write_text(stem.with_suffix(".html"), html)
    svg = spec_to_mimebundle(spec=spec, format="svg", scale_factor=1.0, **versions)["image/svg+xml"]
    atomic_write_text(stem.with_suffix(".svg"), svg)
    # the PNG: the SVG just drawn, rasterised by vl-convert (at altair's default 72 ppi). The
    # bytes are those of chart.save(format="png"), whose vl-convert call renders the same SVG
    # and rasterises it (tests/test_figures.py compares them), without running Altair's
    # validation and Vega a second time
    import vl_convert as vlc

    atomic_write_bytes(stem.with_suffix(".png"), vlc.svg_to_png(svg, scale=png_scale, ppi=72))


__all__ = ["save_chart", "write_javascript_bundle"]


# ---------------------------------------------------------------------------------------------
# Shared by the what-if studies' figures
# ---------------------------------------------------------------------------------------------


def series_colour(series: list[str], title: str) -> alt.Color:
    """Colour of field ``series``: the baseline in black, the other series in the palette, in
    the given order."""
    others = [s for s in series if s != "baseline"]
    domain = (["baseline"] if "baseline" in series else []) + others
    rng = ([BASELINE_COLOUR] if "baseline" in series else []) + [
        PALETTE[i % len(PALETTE)] for i in range(len(others))
    ]
    return alt.Color("series:N", scale=alt.Scale(domain=domain, range=rng), title=title)


def series_order(df: pl.DataFrame) -> list[str]:
    """The values of ``series`` ordered by channel count (the baseline, null channels, first)."""
    keys = df.select("series", pl.col("channels").fill_null(0)).unique().sort("channels")
    return list(dict.fromkeys(keys["series"].to_list()))


# ---------------------------------------------------------------------------------------------
# Line-end labels (the throughput and series figures)
# ---------------------------------------------------------------------------------------------


LABEL_GAP_PX = 12  # px between two line-end labels (one line of 11 px text)


def _spread_labels(values: list[float], lo: float, hi: float, height: float) -> list[float]:
    """Positions (same log scale as `values`, in GB/s) for line-end labels at `values`, moved
    apart so that no two are closer than LABEL_GAP_PX on a log axis [lo, hi] of `height` px:
    labels that would overlap form a group centred on its lines' mean; a label clear of the
    others stays at its line."""
    if not values:
        return []
    gap = LABEL_GAP_PX / height * (math.log10(hi) - math.log10(lo))
    order = sorted(range(len(values)), key=lambda i: values[i])
    logs = [math.log10(values[i]) for i in order]
    groups = [[k] for k in range(len(logs))]  # indices into `logs`, bottom to top

    def place(g: list[int]) -> list[float]:
        centre = sum(logs[k] for k in g) / len(g)
        return [centre + gap * (j - (len(g) - 1) / 2) for j in range(len(g))]

    merged = True
    while merged:
        merged = False
        for j in range(len(groups) - 1):
            if place(groups[j])[-1] + gap > place(groups[j + 1])[0] + 1e-12:
                groups[j : j + 2] = [groups[j] + groups[j + 1]]
                merged = True
                break
    pos = [p for g in groups for p in place(g)]
    out = [0.0] * len(values)
    for rank, i in enumerate(order):
        out[i] = 10 ** pos[rank]
    return out
