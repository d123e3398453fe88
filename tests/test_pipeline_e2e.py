"""End to end: the real snakemake on config/smoke.yaml, in a copy of the workflow.

Checks the Parquet files against their schemas, the summaries against the engine called
directly, every figure in its three formats, the tables, results/index.html, the logs, the
Snakemake report, and that a second run gives byte-identical Parquet files."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
from pipeline_util import (
    SMOKE_ARGS,
    copy_workflow,
    load_config,
    seed_vega_bundle,
    smoke_copy,
    smoke_run,
    snakemake,
)
from test_figures import check_figure_files

from migsim import __version__, pipeline
from migsim.cost.platform import load_platform
from migsim.output import tables
from migsim.studies import compaction as compaction_study
from migsim.studies import throughput as throughput_study
from migsim.units import parse_size

pytestmark = pytest.mark.slow

FIGURES = ("throughput", "speedup", "parity", "compaction")
TABLE_NAMES = ("throughput", "throughput_vs_published", "compaction", "compaction_vs_published")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return smoke_run(tmp_path_factory)


@pytest.fixture(scope="module")
def config(work) -> dict:
    return load_config(work, "config/smoke.yaml")


def test_one_run_file_per_job_each_matching_its_schema(work, config):
    runs = work / "results" / "runs"  # runs/<kind>/<row or mode>/<digest>.parquet
    rows = sorted(p.parent.name for p in (runs / "throughput").glob("*/*.parquet"))
    assert rows == sorted(pipeline.throughput_rows(config))
    assert rows == ["baseline", "dma-1ch", "dma-4ch", "mt-2t"]  # smoke.yaml's matrix
    modes = sorted(p.parent.name for p in (runs / "compaction").glob("*/*.parquet"))
    assert modes == sorted(config["compaction"]["modes"])
    for p in (runs / "throughput").glob("*/*.parquet"):
        throughput_study.THROUGHPUT_RUNS.check_file(p)
        meta = tables.read_metadata(p)
        assert meta["migsim_version"] == __version__ and meta["seed"] == str(config["seed"])
        assert meta["config_hash"] == pipeline.config_hash(
            pipeline.throughput_params(config, p.parent.name)
        )
        df = pl.read_parquet(p)
        assert (
            df.height == len(config["throughput"]["folio_sizes"]) * config["throughput"]["trials"]
        )
    for p in (runs / "compaction").glob("*/*.parquet"):
        compaction_study.COMPACTION_RUNS.check_file(p)
        assert pl.read_parquet(p).height == config["compaction"]["runs"]
    throughput_study.THROUGHPUT_SUMMARY.check_file(
        work / "results" / "summary" / "throughput.parquet"
    )
    compaction_study.COMPACTION_SUMMARY.check_file(
        work / "results" / "summary" / "compaction.parquet"
    )


def test_throughput_summary_agrees_with_the_engine(work, config):
    from migsim.studies.throughput import run_throughput

    tp = config["throughput"]
    platform = load_platform(work / config["platform"])
    summary = pl.read_parquet(work / "results" / "summary" / "throughput.parquet")
    assert summary.height == len(pipeline.throughput_rows(config)) * len(tp["folio_sizes"])
    seeds = set()
    for r in summary.iter_rows(named=True):
        seed = pipeline.cell_seed(
            config["seed"], "throughput", r["mode"], r["channels"], r["threads"], r["folio_bytes"]
        )
        seeds.add(seed)
        direct = run_throughput(
            platform,
            mode=r["mode"],
            folio_size=r["folio_bytes"],
            channels=r["channels"],
            threads=r["threads"],
            total_bytes=parse_size(tp["total_bytes"]),
            batch_limit=tp["batch_limit"],
            trials=tp["trials"],
            seed=seed,
        )
        assert r["n"] == tp["trials"]
        assert r["mean_gbps"] == pytest.approx(direct.mean_gbps, rel=1e-12)
        assert r["sd_gbps"] == pytest.approx(direct.sd_gbps, rel=1e-9)
    assert len(seeds) == summary.height  # every cell draws its own noise


def test_compaction_summary_agrees_with_the_engine(work, config):
    from migsim.kernel import fragment
    from migsim.studies import compaction

    platform = load_platform(work / config["platform"])
    fr, cp = config["fragmentation"], config["compaction"]
    summary = pl.read_parquet(work / "results" / "summary" / "compaction.parquet")
    params = pipeline.fragmentation_params(config)
    node = fragment.FragmentConfig(
        node_bytes=params["node_bytes"],
        free_ratio=params["free_ratio"],
        pattern=params["pattern"],
        seed=params["seed"],
    )
    for mode in cp["modes"]:
        rows = [
            compaction.run_compaction(
                platform,
                mode=mode,
                channels=cp["channels"],
                cluster_max=cp["cluster_max"],
                node_bytes=parse_size(fr["node_bytes"]),
                allocations=cp["allocations"],
                free_ratio=fr["free_ratio"],
                pattern=fr["pattern"],
                seed=pipeline.cell_seed(config["seed"], "compaction", mode, run),
                fail_rate=cp["fail_rate"],
                min_batch_bytes=cp["min_batch_bytes"],
                state=fragment.fragment(node, node_cpus=platform.compaction.node_cpus_count),
                noise=cp["noise"],
            ).row()
            for run in range(cp["runs"])
        ]
        got = {r["metric"]: r for r in summary.filter(pl.col("mode") == mode).iter_rows(named=True)}
        for metric in ("wall_ms", "pages_migrated", "sys_pct", "idle_pct", "user_pct"):
            values = [float(r[metric]) for r in rows]
            assert got[metric]["n"] == len(values)
            assert got[metric]["mean"] == pytest.approx(sum(values) / len(values), rel=1e-12)
        if cp["noise"] and cp["runs"] > 1:  # runs of a mode differ by their noise only
            assert got["wall_ms"]["sd"] > 0


def test_summaries_carry_published_values_where_measured(work):
    s = pl.read_parquet(work / "results" / "summary" / "throughput.parquet")
    b = s.filter((pl.col("mode") == "baseline") & (pl.col("folio_size") == "4K")).row(0, named=True)
    assert b["published_gbps"] == 3.55 and b["published_sd_gbps"] == 0.19  # the CSV's cell
    assert b["rel_error"] == pytest.approx(b["mean_gbps"] / 3.55 - 1)
    assert (
        s.filter(pl.col("mode") == "mt")["published_gbps"].null_count()
        == s.filter(pl.col("mode") == "mt").height
    )
    c = pl.read_parquet(work / "results" / "summary" / "compaction.parquet")
    # the smoke node (2 GB, 256 allocations) is not the published setup: no published values
    assert c["published"].null_count() == c.height


def test_every_figure_in_three_formats(work):
    for name in FIGURES:
        check_figure_files(work / "results" / "figures" / name)


def test_tables_in_the_published_layout(work):
    for name in TABLE_NAMES:
        md = (work / "results" / "tables" / f"{name}.md").read_text()
        html = (work / "results" / "tables" / f"{name}.html").read_text()
        assert md.startswith("## ") and "|" in md
        assert "<table>" in html and "http" not in html
    md = (work / "results" / "tables" / "throughput.md").read_text()
    header = next(ln for ln in md.splitlines() if ln.startswith("|"))
    assert [c.strip() for c in header.strip("|").split("|")][1:] == ["4K", "2M"]
    assert re.search(r"\| DMA 4 ch \| \d+\.\d\d±\d+\.\d\d \|", md)
    vs = (work / "results" / "tables" / "throughput_vs_published.md").read_text()
    assert re.search(r"\| baseline \| \d+\.\d\d±\d+\.\d\d / 3\.55±0\.19 \([+-]\d+\.\d%\)", vs)
    # the compaction page also decomposes every mode per migrated page
    cvs = (work / "results" / "tables" / "compaction_vs_published.md").read_text()
    assert "## Direct compaction per migrated page" in cvs
    assert re.search(r"\| busy-dma \| \d+\.\d{3}", cvs) and "saved by offload" in cvs


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.srcs = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "href" in a and tag == "a":
            self.hrefs.append(a["href"])
        if "src" in a:
            self.srcs.append(a["src"])


def _local_links(page: Path) -> tuple[set[Path], list[str]]:
    """The files `page` links (resolved) and the sources it loads."""
    parser = _Links()
    parser.feed(page.read_text())
    hrefs = {
        (page.parent / h.split("#")[0]).resolve() for h in parser.hrefs if not h.startswith("#")
    }
    return hrefs, parser.srcs


def test_index_reaches_every_figure_and_table(work):
    """Every link of the index resolves; every figure (HTML, SVG, PNG) and table (Markdown,
    HTML) is linked from the index or from a page it links; the index loads only local files
    (the studies' thumbnails) and draws the answer's figure inline."""
    index = work / "results" / "index.html"
    text = index.read_text()
    targets, srcs = _local_links(index)
    assert all(t.is_file() for t in targets), [t for t in targets if not t.is_file()]
    reached = set(targets)
    for page in [t for t in targets if t.suffix == ".html"]:
        reached |= _local_links(page)[0]
    for name in FIGURES:
        for ext in ("html", "svg", "png"):
            assert (work / "results" / "figures" / f"{name}.{ext}").resolve() in reached, name
    for name in TABLE_NAMES:
        for ext in ("md", "html"):
            assert (work / "results" / "tables" / f"{name}.{ext}").resolve() in reached, name
    assert srcs and all((index.parent / s).is_file() for s in srcs), srcs
    assert not re.search(r"(src|href)=['\"]https?:", text)
    assert "<section id='answer'>" in text and text.count("<svg") >= 1


def test_every_job_has_a_log(work, config):
    logs = work / "results" / "logs"
    expected = [logs / "fragment.log", logs / "index.log"]
    expected += [logs / "compaction.log"]  # one job simulates once and costs every mode
    expected += [logs / "figures" / "vega_bundle.log"]
    # a throughput job's log is named by its output's digest: one per row in a fresh run
    for r in pipeline.throughput_rows(config):
        found = sorted((logs / "throughput" / r).glob("*.log"))
        assert len(found) == 1, (r, found)
        expected += found
    expected += [logs / "aggregate" / f"{k}.log" for k in ("throughput", "compaction")]
    # one job draws every figure of an experiment
    expected += [logs / "figures" / f"{k}.log" for k in ("throughput", "compaction")]
    expected += [logs / "whatif" / "render.log"]  # every study: one job
    expected += [logs / "tables" / f"{k}.log" for k in ("throughput", "compaction")]
    for log in expected:
        assert log.is_file() and log.read_text().rstrip().endswith("done"), log


def test_snakemake_report_with_captions(work, tmp_path):
    with smoke_copy(work, tmp_path / "report") as copy:  # snakemake writes in its directory
        out = copy / "results" / "report.html"
        snakemake(copy, "--report", str(out), *SMOKE_ARGS)
        text = out.read_text()
    assert "Speed-up of the offloaded copy" in text  # a figure caption
    assert "Simulated throughput in the layout of the published table" in text  # a table's


def test_same_config_and_seed_give_identical_parquet(work, tmp_path):
    again = copy_workflow(tmp_path / "again")
    seed_vega_bundle(work, again)  # the figures' script, not simulated: no Parquet reads it
    targets = [
        f"results/summary/{k}.parquet" for k in ("throughput", "compaction", "alloc_latency")
    ]
    # the what-if summaries by the paths the first run wrote: their digests must come out the
    # same too (a different digest is a target no rule makes, and the run fails)
    studies = sorted((work / "results").glob("runs/whatif/*/*.parquet"))
    assert studies, "the smoke run wrote no study summary"
    targets += [str(f.relative_to(work)) for f in studies]
    snakemake(again, *targets, "--cores", "2", *SMOKE_ARGS)
    files = sorted((work / "results").glob("runs/*/*/*.parquet"))
    files += sorted((work / "results").glob("summary/*.parquet"))
    assert len(files) >= 10
    for f in files:
        twin = again / f.relative_to(work)
        assert twin.read_bytes() == f.read_bytes(), f.relative_to(work)
