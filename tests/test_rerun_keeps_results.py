"""A failing rerun keeps the previous result (issue 16, item 5), through the real snakemake.

A completed run (a copy of the session's shared smoke run, pipeline_util.smoke_run: the same
config/smoke.yaml run every workflow test reads, not a build of its own); then a rerun with a
changed value whose jobs fail (the engine refuses to start: the machine seems to have no
memory); the previous run files are still readable, results/index.html still points at them
and is unchanged, the failed job's log holds the traceback. Then the same rerun succeeds, the
index points at the new files, and ``snakemake prune`` removes the old ones.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import polars as pl
import pytest
from pipeline_util import SMOKE_ARGS, env_for, load_config, run_snakemake, smoke_copy, smoke_run

pytestmark = pytest.mark.slow


def run(work: Path, *args: str, env: dict | None = None, target: str | None = None):
    first = [target] if target else []  # before the options that take several values
    return run_snakemake(work, *first, "--cores", "2", *SMOKE_ARGS, *args,
                         env={**env_for(work), **(env or {})})  # fmt: skip


def index_runs(work: Path) -> list[str]:
    """The run files results/index.html lists (relative to results/)."""
    text = (work / "results" / "index.html").read_text()
    return sorted(set(re.findall(r"href='(runs/[^']+\.parquet)'", text)))


def test_a_failing_rerun_keeps_the_previous_result(tmp_path_factory, tmp_path):
    with smoke_copy(smoke_run(tmp_path_factory), tmp_path / "w") as work:
        _failing_rerun_keeps_the_previous_result(work)


def _failing_rerun_keeps_the_previous_result(work: Path) -> None:
    tp = load_config(work, SMOKE_ARGS[1])["throughput"]
    rows = sorted(["baseline", *(f"dma-{c}ch" for c in tp["channels"]),
                   *(f"mt-{t}t" for t in tp["threads"])])  # fmt: skip
    n_sizes, trials = len(tp["folio_sizes"]), tp["trials"]
    assert trials != 2  # the rerun's changed value
    results = work / "results"
    old_runs = index_runs(work)
    # every throughput row and compaction mode of the completed run
    kinds = sorted(r.split("/")[1] + "/" + r.split("/")[2] for r in old_runs)
    modes = load_config(work, SMOKE_ARGS[1])["compaction"]["modes"]
    assert kinds == sorted([*(f"compaction/{m}" for m in modes),
                            *(f"throughput/{r}" for r in rows)])  # fmt: skip
    studies = sorted(str(p.relative_to(results)) for p in results.glob("runs/whatif/*/*.parquet"))
    assert studies  # the what-if study runs, which the index does not list and the rerun keeps
    index_before = (results / "index.html").read_bytes()
    summary_before = (results / "summary" / "throughput.parquet").read_bytes()

    # the rerun with a changed value fails in its jobs
    failing = run(work, "--config", "throughput={trials: 2}",
                  env={"MIGSIM_MEMORY_AVAILABLE": "1"})  # fmt: skip
    assert failing.returncode != 0
    assert "more than the 0.0 GB this machine has available" in failing.stderr
    # the previous result: still there, readable, pointed at by the unchanged index
    assert (results / "index.html").read_bytes() == index_before
    assert (results / "summary" / "throughput.parquet").read_bytes() == summary_before
    assert index_runs(work) == old_runs
    for rel in old_runs:
        df = pl.read_parquet(results / rel)
        if rel.startswith("runs/throughput/"):
            assert df.height == n_sizes * trials  # the folio sizes, the old trials
    # the failed job's log has the traceback too
    logs = [p for p in (results / "logs" / "throughput").rglob("*.log")
            if "failed" in p.read_text()]  # fmt: skip
    assert logs and all("Traceback (most recent call last)" in p.read_text() for p in logs)

    # the same rerun where it can run: new files beside the old, the index points at them
    ok = run(work, "--config", "throughput={trials: 2}")
    assert ok.returncode == 0, ok.stderr[-3000:]
    new_runs = index_runs(work)
    changed = sorted(set(new_runs) - set(old_runs))
    assert [r.split("/")[2] for r in changed] == rows  # throughput only
    assert all((results / r).is_file() for r in old_runs + new_runs + studies)
    for rel in changed:
        assert pl.read_parquet(results / rel).height == n_sizes * 2

    # prune removes what the current configuration no longer uses, and nothing else
    pruned = run(work, "--config", "throughput={trials: 2}", target="prune")
    assert pruned.returncode == 0, pruned.stderr[-3000:]
    gone = sorted(set(old_runs) - set(new_runs))
    assert gone and all(not (results / r).exists() for r in gone)
    assert all((results / r).is_file() for r in new_runs + studies)
    assert sorted(str(p.relative_to(results)) for p in results.glob("runs/*/*/*.parquet")) == (
        sorted(new_runs + studies)
    )
    assert os.listdir(results / "state") and len(list(results.glob("state/*/*.npz"))) == 1
