"""The mmtests-style compare report, `migsim compare`, and the kernel-format pipeline outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from pipeline_util import smoke_copy, smoke_run, snakemake

from migsim.formats import mmtests
from migsim.formats.trace import TRACE_EVENTS
from migsim.studies.compaction import COMPACTION_RUNS, simulate
from migsim.studies.kernel_formats import (
    ALLOC_LATENCY_SUMMARY,
    summarise_alloc_latency,
    write_trace,
)


def two_runs() -> list[mmtests.RunStats]:
    a, b = mmtests.RunStats("base"), mmtests.RunStats("new")
    a.add(mmtests.Metric("latency", "us", np.array([10.0, 20.0, 30.0, 40.0])))
    b.add(mmtests.Metric("latency", "us", np.array([5.0, 10.0, 15.0, 20.0])))
    a.add(mmtests.Metric("rate", "pages/s", np.array([1.0, 4.0]), True, quantiles=False))
    b.add(mmtests.Metric("rate", "pages/s", np.array([2.0, 2.0]), True, quantiles=False))
    a.ops, b.ops = {"pgmigrate_success": 100.0}, {"pgmigrate_success": 150.0}
    return [a, b]


def test_rows_values_and_signed_percentages():
    rows = {(r.label, r.metric): r for r in mmtests.report_rows(two_runs())}
    am = rows[("Amean", "latency-us")]
    assert am.values == [25.0, 12.5] and am.pcts[1] == pytest.approx(50.0)  # lower: better
    assert rows[("Max", "latency-us")].values == [40.0, 20.0]
    assert rows[("2nd-qrtle", "latency-us")].values == [25.0, 12.5]
    hm = rows[("Hmean", "rate-pages/s")]
    assert hm.values == pytest.approx([1.6, 2.0]) and hm.pcts[1] == pytest.approx(25.0)
    assert ("Min", "rate-pages/s") not in rows  # a rate per run: means only
    ops = rows[("Ops", "pgmigrate_success")]
    assert ops.values == [100.0, 150.0] and ops.pcts[1] == pytest.approx(50.0)


def test_text_layout_and_markdown():
    text = mmtests.format_text(two_runs(), "title")
    lines = text.splitlines()
    assert lines[0] == "title" and lines[1].split() == ["base", "new"]
    am = next(line for line in lines if line.startswith("Amean     latency-us"))
    assert am.split() == ["Amean", "latency-us", "25.00", "(", "0.00%)", "12.50", "(", "50.00%)"]
    assert any(line.startswith("Ops       pgmigrate_success") for line in lines)
    md = mmtests.format_markdown(two_runs(), "title")
    assert "| Hmean | rate-pages/s | 1.60 | 2.00 (  25.00%) |" in md


def test_one_run_is_not_a_comparison():
    with pytest.raises(ValueError, match="two or more"):
        mmtests.report_rows(two_runs()[:1])


@pytest.fixture(scope="module")
def traces(tmp_path_factory, platform):
    d = tmp_path_factory.mktemp("traces")
    sim = simulate(platform, node_bytes=64 << 20, allocations=16, trace=True)
    out = {}
    for mode in ("baseline", "busy-dma"):
        res = sim.result(platform, mode=mode, channels=1)
        write_trace(res, d / f"{mode}.trace", 10**6)
        write_trace(res, d / f"{mode}.parquet", 10**6)
        out[mode] = res
    return d, out


def test_compare_cli_json_text_md_and_figure(traces, tmp_path, capsys):
    """Through migsim.cli.main in-process (what the process runs; a real process's exit status
    and stderr: test_compare_cli_bad_input)."""
    from migsim.cli import main

    d, res = traces
    args = ["compare", str(d / "baseline.trace"), str(d / "busy-dma.parquet"),
            "--names", "real,sim", "--md", str(tmp_path / "r.md"),
            "--figure", str(tmp_path / "fig"), "--json"]  # fmt: skip
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == ["real", "sim"]
    ops = out["ops"]
    for mode, name in (("baseline", "real"), ("busy-dma", "sim")):
        assert ops[name]["pgmigrate_success"] == res[mode].vmstat["pgmigrate_success"]
        assert ops[name]["migrate_pages_calls"] == res[mode].migrate_calls
    lat = next(r for r in out["rows"] if (r["stat"], r["metric"]) == ("Amean", "call-latency-us"))
    assert lat["pct"][1] < 0  # the busy mode's calls take longer: worse
    assert (
        (tmp_path / "r.md")
        .read_text()
        .startswith("## migsim compare\n\n| stat | metric | real | sim |")
    )
    for ext in ("html", "svg", "png"):
        assert (tmp_path / f"fig.{ext}").stat().st_size > 1000


def test_compare_cli_bad_input(traces, tmp_path, capsys):
    """The first case as a real process (its exit status and stderr), the others through
    migsim.cli.main in-process (what the process runs; argparse's errors exit from it)."""
    from migsim.cli import main

    def in_process(*args: str) -> tuple[int, str]:
        try:
            rc = main(["compare", *args])
        except SystemExit as e:
            rc = e.code
        return rc, capsys.readouterr().err

    base = [sys.executable, "-m", "migsim.cli", "compare"]
    d, _ = traces
    p = subprocess.run([*base, str(d / "baseline.trace")], capture_output=True, text=True)
    assert p.returncode == 2 and "two or more" in p.stderr
    rc, err = in_process(str(d / "baseline.trace"), str(tmp_path / "none"))
    assert rc == 2 and "no such file" in err
    rc, err = in_process(str(d / "baseline.trace"), str(d / "busy-dma.trace"), "--names", "a")
    assert rc == 2 and "--names" in err


def test_alloc_latency_summary_quantiles(platform):
    sim = simulate(platform, node_bytes=64 << 20, allocations=16)
    rows = [sim.result(platform, mode=m).row() for m in ("baseline", "busy-baseline")]
    s = summarise_alloc_latency(COMPACTION_RUNS.frame(rows))
    ALLOC_LATENCY_SUMMARY.conform(s)
    base = s.filter(pl.col("mode") == "baseline")
    assert base.height == 101 and base["n"][0] == 16
    lat = np.array(rows[0]["alloc_latency_us"])
    assert base.filter(pl.col("q") == 0.5)["latency_us"][0] == pytest.approx(np.median(lat))
    assert base.filter(pl.col("q") == 1.0)["latency_us"][0] == pytest.approx(lat.max())


# ---- through the real snakemake --------------------------------------------------------------


def test_pipeline_writes_latency_and_mmtests_outputs(tmp_path_factory):
    work = smoke_run(tmp_path_factory)
    res = work / "results"
    s = pl.read_parquet(res / "summary" / "alloc_latency.parquet")
    ALLOC_LATENCY_SUMMARY.conform(s)
    runs = pl.concat(
        [pl.read_parquet(p) for p in sorted((res / "runs" / "compaction").glob("*/*.parquet"))]
    )
    for (mode,), g in runs.group_by(["mode"]):
        lat = np.concatenate(g["alloc_latency_us"].to_list())
        got = s.filter((pl.col("mode") == mode) & (pl.col("q") == 0.99))["latency_us"][0]
        assert got == pytest.approx(np.quantile(lat, 0.99))
    text = (res / "tables" / "mmtests_compaction.txt").read_text()
    assert "Amean     alloc-latency-us" in text and "Ops       pgmigrate_success" in text
    for ext in ("html", "svg", "png"):
        assert (res / "figures" / f"alloc_latency.{ext}").stat().st_size > 1000
    page = (res / "index.html").read_text()
    assert "id='study-alloc_latency'" in page
    # its summary is an input of the index rule, so its card answers in one line
    card = page.split("id='study-alloc_latency'")[1].split("</section>")[0]
    med = s.filter(pl.col("q") == 0.5).sort("mode_order").row(0, named=True)
    assert f"<p class='line'>Median order-9 allocation latency: {med['mode']} " in card
    assert f"{med['latency_us']:,.0f} us" in card


def test_pipeline_trace_target_and_compare(tmp_path_factory, tmp_path):
    """The trace targets in a copy of the shared smoke run (their config would rerun its
    index), from its fragmented state: every mode's events, then a "real" trace -- here the
    simulated busy-dma one -- beside the simulated baseline."""
    with smoke_copy(smoke_run(tmp_path_factory), tmp_path / "w") as work:
        _trace_target_and_compare(work, tmp_path / "real.trace")


def _trace_target_and_compare(work, real):
    cfg = 'trace={"compare_with": "' + str(real) + '"}'
    modes = ("baseline", "dma", "busy-baseline", "busy-dma")
    targets = [f"results/traces/compaction-{m}.parquet" for m in modes]
    snakemake(work, *targets, "--cores", "2", "--configfile", "config/smoke.yaml",
              "--config", cfg)  # fmt: skip
    res = work / "results"
    real.write_bytes((res / "traces" / "compaction-busy-dma.trace").read_bytes())
    snakemake(work, "results/compare/trace.md", "--cores", "2", "--configfile",
              "config/smoke.yaml", "--config", cfg)  # fmt: skip
    for mode in modes:
        TRACE_EVENTS.check_file(res / "traces" / f"compaction-{mode}.parquet")
    text = (res / "compare" / "trace.txt").read_text()
    assert text.splitlines()[1].split() == ["real", "simulated"]
    assert (res / "compare" / "trace.svg").stat().st_size > 1000
