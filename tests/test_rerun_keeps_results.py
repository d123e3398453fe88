"""A failing rerun keeps the previous result (issue 16, item 5), through the real snakemake.

A completed run; then a rerun with a changed value whose jobs fail (the engine refuses to
start: the machine seems to have no memory); the previous run files are still readable,
results/index.html still points at them and is unchanged, the failed job's log holds the
traceback. Then the same rerun succeeds, the index points at the new files, and
``snakemake prune`` removes the old ones.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import polars as pl
import pytest
import yaml
from pipeline_util import copy_workflow, env_for, run_snakemake

pytestmark = pytest.mark.slow

# a small matrix, the what-if studies off: the test is about files, not numbers
TINY = {
    "throughput": {"modes": ["baseline", "dma"], "folio_sizes": ["4K", "2M"], "channels": [2],
                   "threads": [2], "trials": 3, "total_bytes": "64M"},
    "fragmentation": {"node_bytes": "256M"},
    "compaction": {"modes": ["baseline", "dma"], "allocations": 16, "runs": 1},
    "whatif": {s: {"enabled": False}
               for s in ("cluster_max", "engine_class", "hybrid", "fragmentation", "latency")},
}  # fmt: skip


def run(work: Path, *args: str, env: dict | None = None, target: str | None = None):
    first = [target] if target else []  # before the options that take several values
    return run_snakemake(work, *first, "--cores", "2", "--configfile", "tiny.yaml", *args,
                         env={**env_for(work), **(env or {})})  # fmt: skip


def index_runs(work: Path) -> list[str]:
    """The run files results/index.html lists (relative to results/)."""
    text = (work / "results" / "index.html").read_text()
    return sorted(set(re.findall(r"href='(runs/[^']+\.parquet)'", text)))


def test_a_failing_rerun_keeps_the_previous_result(tmp_path):
    work = copy_workflow(tmp_path / "wf", with_src=False)
    (work / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    first = run(work)
    assert first.returncode == 0, first.stderr[-3000:]
    results = work / "results"
    old_runs = index_runs(work)
    assert len(old_runs) == 4  # baseline, dma-2ch, compaction baseline and dma
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
            assert df.height == 2 * 3  # two folio sizes, the old three trials
    # the failed job's log has the traceback too
    logs = [p for p in (results / "logs" / "throughput").rglob("*.log")
            if "failed" in p.read_text()]  # fmt: skip
    assert logs and all("Traceback (most recent call last)" in p.read_text() for p in logs)

    # the same rerun where it can run: new files beside the old, the index points at them
    ok = run(work, "--config", "throughput={trials: 2}")
    assert ok.returncode == 0, ok.stderr[-3000:]
    new_runs = index_runs(work)
    changed = sorted(set(new_runs) - set(old_runs))
    assert [r.split("/")[2] for r in changed] == ["baseline", "dma-2ch"]  # throughput only
    assert all((results / r).is_file() for r in old_runs + new_runs)
    for rel in changed:
        assert pl.read_parquet(results / rel).height == 2 * 2

    # prune removes what the current configuration no longer uses, and nothing else
    pruned = run(work, "--config", "throughput={trials: 2}", target="prune")
    assert pruned.returncode == 0, pruned.stderr[-3000:]
    gone = sorted(set(old_runs) - set(new_runs))
    assert all(not (results / r).exists() for r in gone)
    assert all((results / r).is_file() for r in new_runs)
    assert sorted(str(p.relative_to(results)) for p in results.glob("runs/*/*/*.parquet")) == (
        new_runs
    )
    assert os.listdir(results / "state") and len(list(results.glob("state/*/*.npz"))) == 1
