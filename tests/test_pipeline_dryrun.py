"""The dry-run plan (`snakemake -n`): the default jobs, and which jobs a change reruns.

Changing one configuration value reruns only the jobs it affects; adding a channel count adds
one throughput job; the platform file and the engine's source files are inputs of the
simulations (Snakemake does not track imported packages); presentation code is not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from pipeline_util import (
    SMOKE_ARGS,
    SNAKEMAKE,
    TIMEOUT_S,
    copy_workflow,
    env_for,
    plan,
    planned_jobs,
    rule_counts,
    smoke_edit,
    smoke_run,
    snakemake,
)

SIMULATIONS = ("fragment", "throughput", "compaction")
THROUGHPUT_DOWNSTREAM = {
    "aggregate_throughput",
    "figures_throughput",  # the throughput, speedup and parity figures: one job
    "tables_throughput",
}
COMPACTION_DOWNSTREAM = {"aggregate_compaction", "figures_compaction", "tables_compaction"}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return smoke_run(tmp_path_factory)


def job_name(output: str) -> str:
    """What a simulation output is of: the row or mode of ``runs/<kind>/<key>/<digest>.parquet``,
    ``fragmentation`` of ``state/<digest>/fragmentation.npz`` (files are named by digest)."""
    p = Path(output)
    return p.parent.name if p.parent.parent.parent.name == "runs" else p.stem


def sim_jobs(jobs) -> dict[str, list[str]]:
    """Simulation jobs of a plan: rule -> names of their outputs."""
    out: dict[str, list[str]] = {}
    for rule, outputs in jobs:
        if rule in SIMULATIONS:
            out.setdefault(rule, []).extend(job_name(o) for o in outputs)
    return {k: sorted(v) for k, v in out.items()}


def rules(jobs) -> set[str]:
    return {rule for rule, _ in jobs}


def _replace(path: Path, data: bytes, times_ns: tuple[int, int]) -> None:
    """Write `path` whole (a temporary file renamed over it: a reader of the shared smoke run
    sees the old or the new text, never a part) with the given access and modification times."""
    tmp = path.with_name(path.name + ".edit")
    tmp.write_bytes(data)
    os.utime(tmp, ns=times_ns)
    os.replace(tmp, path)


@contextmanager
def edited(work: Path, path: Path):
    """Edit `path` of the shared smoke run `work` (append a comment line, mtime an hour from
    now, so that it is newer than any output whatever the copied file's own time was),
    restoring its content and times afterwards; under smoke_edit(), so that no copy of the run
    is taken meanwhile."""
    with smoke_edit(work):
        st, text = path.stat(), path.read_bytes()
        ahead = time.time_ns() + 3600 * 10**9
        _replace(path, text + b"\n# edited by a test\n", (ahead, ahead))
        try:
            yield
        finally:
            _replace(path, text, (st.st_atime_ns, st.st_mtime_ns))


def test_default_plan_lists_every_job(tmp_path):
    work = copy_workflow(tmp_path / "w", with_src=False)
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    tp, cp = config["throughput"], config["compaction"]
    counts = rule_counts(plan(work))
    assert counts["fragment"] == 1
    assert counts["throughput"] == 1 + len(tp["channels"]) + len(tp["threads"])  # 13 rows
    assert counts["compaction"] == 1  # one job simulates once and costs every mode
    assert len(cp["modes"]) == 4
    for rule in THROUGHPUT_DOWNSTREAM | COMPACTION_DOWNSTREAM | {"index", "all"}:
        assert counts[rule] == 1, rule
    assert not (work / "results").exists()  # a dry run writes nothing


def test_the_server_reply_reader_keeps_a_second_line_read_at_once():
    """Both reply lines of a quick run arrive in one read: the second is returned from the
    reader's buffer at once, not waited for on the (empty) pipe until the deadline."""
    from pipeline_util import _reply

    both = '{"pid": 1}\\n{"returncode": 3}\\n'
    code = f"import sys, time; sys.stdout.write('{both}'); sys.stdout.flush(); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # both lines in the pipe before the first read
        assert _reply(proc, None) == {"pid": 1}
        assert _reply(proc, time.monotonic() + 5) == {"returncode": 3}
    finally:
        proc.kill()
        proc.wait()


def test_the_forked_snakemake_plans_what_a_fresh_process_plans(tmp_path):
    """pipeline_util.snakemake runs snakemake in a child forked from a server that imported
    it once (its start-up is most of a dry run's CPU time); a fresh `python -m snakemake`
    plans the same jobs with the same outputs, and stops on a bad value with the same status
    and message."""
    work = copy_workflow(tmp_path / "w", with_src=False)

    def fresh(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*SNAKEMAKE, *args], cwd=work, env=env_for(work),
                              capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip

    def jobs(proc) -> list:
        return sorted(
            (rule, sorted(outs)) for rule, outs in planned_jobs(proc.stdout + proc.stderr)
        )

    want, got = fresh("-n", *SMOKE_ARGS), snakemake(work, "-n", *SMOKE_ARGS)
    assert want.returncode == got.returncode == 0
    assert len(jobs(want)) > 20 and jobs(got) == jobs(want)
    bad = ("--cores", "1", "--config", "seed=-3")
    want, got = fresh(*bad), snakemake(work, *bad, check=False)
    line = "config: seed: -3 is less than the minimum of 0"
    assert want.returncode == got.returncode == 1
    assert line in want.stderr and line in got.stderr and line not in got.stdout
    assert not (work / "results").exists()


def test_nothing_to_do_after_a_run(work):
    jobs = plan(work, *SMOKE_ARGS)
    assert jobs == []


def test_adding_a_channel_count_runs_only_the_new_job(work):
    jobs = plan(work, *SMOKE_ARGS, "--config", "throughput={channels: [1, 4, 8]}")
    assert sim_jobs(jobs) == {"throughput": ["dma-8ch"]}
    # the new row, then what summarises it; nothing else of the workflow reruns
    assert rule_counts(jobs) == {"throughput": 1, "index": 1, "all": 1} | dict.fromkeys(
        THROUGHPUT_DOWNSTREAM, 1
    )


def test_changing_cluster_max_reruns_only_compaction(work):
    jobs = plan(work, *SMOKE_ARGS, "--config", "compaction={cluster_max: 64}")
    assert sim_jobs(jobs) == {
        "compaction": ["baseline", "busy-baseline", "busy-dma", "dma"],
    }
    assert rules(jobs) >= COMPACTION_DOWNSTREAM
    assert not (THROUGHPUT_DOWNSTREAM & rules(jobs))


def test_changing_the_fragmentation_reruns_fragment_and_compaction(work):
    jobs = plan(work, *SMOKE_ARGS, "--config", "fragmentation={free_ratio: 0.25}")
    assert sim_jobs(jobs) == {
        "fragment": ["fragmentation"],
        "compaction": ["baseline", "busy-baseline", "busy-dma", "dma"],
    }
    assert not (THROUGHPUT_DOWNSTREAM & rules(jobs))


def test_changing_trials_reruns_every_throughput_row(work):
    jobs = plan(work, *SMOKE_ARGS, "--config", "throughput={trials: 4}")
    assert sim_jobs(jobs) == {"throughput": ["baseline", "dma-1ch", "dma-4ch", "mt-2t"]}


def test_editing_the_platform_file_reruns_the_simulations(work):
    with edited(work, work / "config" / "platforms" / "epyc-zen3-ptdma.yaml"):
        jobs = plan(work, *SMOKE_ARGS)
    assert sim_jobs(jobs) == {
        "fragment": ["fragmentation"],  # the node's CPU count sizes the per-CPU lists
        "throughput": ["baseline", "dma-1ch", "dma-4ch", "mt-2t"],
        "compaction": ["baseline", "busy-baseline", "busy-dma", "dma"],
    }


def test_editing_engine_code_reruns_the_simulations(work):
    with edited(work, work / "src" / "migsim" / "cost" / "copiers.py"):
        jobs = plan(work, *SMOKE_ARGS)
    sims = sim_jobs(jobs)
    assert sims["throughput"] == ["baseline", "dma-1ch", "dma-4ch", "mt-2t"]
    assert sims["compaction"] == ["baseline", "busy-baseline", "busy-dma", "dma"]


def test_editing_the_compiled_loop_reruns_the_compaction(work):
    """kernel/_compact.c is an input of the jobs that import migsim.kernel.compaction (the
    extension has no Python source for the import scan to follow)."""
    with edited(work, work / "src" / "migsim" / "kernel" / "_compact.c"):
        jobs = plan(work, *SMOKE_ARGS)
    assert sim_jobs(jobs)["compaction"] == ["baseline", "busy-baseline", "busy-dma", "dma"]


def test_editing_figure_code_redraws_only_the_figures(work):
    with edited(work, work / "src" / "migsim" / "output" / "figures.py"):
        jobs = plan(work, *SMOKE_ARGS)
    assert sim_jobs(jobs) == {}
    mine = rules(jobs) - {"all", "index"}
    assert {r for r in mine if not r.startswith("whatif")} == {
        "figures_throughput",
        "figures_compaction",
    }


def test_configfile_and_config_overrides_reach_the_jobs(work, tmp_path):
    extra = tmp_path / "more.yaml"
    extra.write_text("throughput:\n  folio_sizes: [4K, 64K, 2M]\n")
    jobs = plan(work, *SMOKE_ARGS, str(extra))  # a second --configfile, merged over the first
    assert sim_jobs(jobs) == {"throughput": ["baseline", "dma-1ch", "dma-4ch", "mt-2t"]}
    sims = sim_jobs(plan(work, *SMOKE_ARGS, "--config", "seed=2"))
    assert set(sims) == {"fragment", "throughput", "compaction"}  # the seed changes every job


def test_changing_a_study_value_reruns_that_study_under_a_new_name(work):
    """A study's summary is named by its parameters' digest like every simulation output: a
    changed value plans a new file, and the previous summary stays until the rerun succeeds
    (and `snakemake prune` removes it)."""
    (old,) = sorted((work / "results" / "runs" / "whatif" / "latency").glob("*.parquet"))
    jobs = plan(work, *SMOKE_ARGS, "--config", "whatif={latency: {knee_pct: 90}}")
    planned = [o for rule, outputs in jobs if rule == "whatif_study" for o in outputs]
    assert len(planned) == 1 and Path(planned[0]).parent.name == "latency"
    assert Path(planned[0]).name != old.name
    assert old.is_file()
    assert not (rules(jobs) & set(SIMULATIONS))  # nothing else is simulated again
