"""The workflow on a real single-machine Slurm cluster (snakemake-executor-plugin-slurm).

Brings up munged, slurmctld and slurmd (tests/slurm_cluster.py), runs the smoke config with
`snakemake --executor slurm --profile workflow/profiles/slurm`, and checks that
- the Parquet results equal those of a local run of the same config, and that the
  simulation jobs ran as Slurm jobs while aggregation and figures stayed local;
- a job cancelled with `scancel` stops the workflow with an error naming the job, and a
  rerun completes it without recomputing what had finished.

Skips (with the reason) only where Slurm, munge or the executor plugin is not installed or
the user is not root, and never in CI (CI=true). Every wait is bounded,
and an alarm ends the whole module after MODULE_TIMEOUT_S, daemons stopped, so it cannot
hang CI.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_util import smoke_run  # noqa: E402
from slurm_cluster import SlurmCluster, missing_binaries, single_node_cluster  # noqa: E402

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"
SMOKE = "config/smoke.yaml"
# What a run needs from the repository (the engine itself is the installed package).
WORKFLOW_FILES = ("Snakefile", "workflow", "config")
MODULE_TIMEOUT_S = 1500  # the whole module: cluster start, four workflow runs, teardown
RUN_TIMEOUT_S = 600  # one snakemake run
# The plugin waits this long before its first status query (the profile says 10 s, a
# site-friendly rate); the single-machine cluster answers at once, so poll faster.
FAST_STATUS = ("--slurm-init-seconds-before-status-checks", "2")
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")
# The rules that must run as Slurm jobs; aggregation, tables, figures and index pages are
# localrules and must run on the submit host.
SIMULATION_RULES = {"fragment", "throughput", "compaction", "whatif_study"}


def slurm_prerequisites_missing() -> list[str]:
    """What this machine lacks to run the Slurm tests (empty when they can run)."""
    missing = []
    binaries = missing_binaries()
    if binaries:
        missing.append(
            f"Slurm is not installed (missing: {', '.join(binaries)}); "
            "install Debian's slurm-wlm and munge"
        )
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        missing.append(
            "snakemake-executor-plugin-slurm is not installed: pip install -e '.[slurm]'"
        )
    if os.geteuid() != 0:
        missing.append(f"the test cluster's daemons must be started as root (uid {os.geteuid()})")
    return missing


def _skip_or_fail_without_slurm() -> None:
    """Skip with the reason where a prerequisite is missing; in CI (CI=true) fail instead."""
    missing = slurm_prerequisites_missing()
    if not missing:
        return
    reason = "; ".join(missing)
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI must run the Slurm test (.ci/run installs them)")
    print(f"SKIP: {reason}")
    pytest.skip(reason)


class _ModuleTimeout(Exception):
    pass


@pytest.fixture(scope="module", autouse=True)
def module_deadline() -> Iterator[float]:
    """Raise in the test (so every finalizer still runs) once the module overruns."""

    def expire(signum, frame):
        raise _ModuleTimeout(f"Slurm tests exceeded {MODULE_TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(MODULE_TIMEOUT_S)
    try:
        yield time.monotonic() + MODULE_TIMEOUT_S
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def within_deadline(module_deadline: float) -> None:
    """Once the alarm has fired, fail the remaining tests at once instead of running them."""
    if time.monotonic() >= module_deadline:
        pytest.fail(f"Slurm tests exceeded {MODULE_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def cluster(module_deadline) -> Iterator[SlurmCluster]:
    _skip_or_fail_without_slurm()
    # Not under pytest's tmp_path: munged wants every directory above its socket to be
    # searchable by all users, and pytest's base temp dir is private (0700).
    root = Path(tempfile.mkdtemp(prefix="migsim-slurm-"))
    try:
        with single_node_cluster(root) as running:
            try:
                yield running
            finally:
                signal.alarm(0)  # teardown has timeouts of its own: let it finish
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def workdirs(cluster) -> Iterator[Path]:
    """A private parent dir for the copies of the workflow that the tests run."""
    base = cluster.root / "runs"
    base.mkdir()
    yield base


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (not results/ or .snakemake/) into `dest`; return `dest`."""
    dest.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def start_snakemake(workdir: Path, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    log = (workdir / "snakemake.out").open("w")
    try:
        return subprocess.Popen(
            ["snakemake", "--configfile", SMOKE, *args],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def finish(proc: subprocess.Popen, workdir: Path, timeout: float = RUN_TIMEOUT_S) -> str:
    """Wait for a snakemake run (killing it on timeout or error); return its output."""
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
    return (workdir / "snakemake.out").read_text(errors="replace")


def run_snakemake(workdir: Path, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    proc = start_snakemake(workdir, args, env)
    out = finish(proc, workdir)
    return proc.returncode, out


def slurm_args() -> list[str]:
    return ["--executor", "slurm", "--profile", str(PROFILE), *FAST_STATUS]


def parquet_tables(workdir: Path) -> dict[str, pl.DataFrame]:
    """Every Parquet file a run wrote under results/, by path relative to the run dir."""
    return {
        str(path.relative_to(workdir)): pl.read_parquet(path)
        for path in sorted((workdir / "results").rglob("*.parquet"))
    }


def submitted_jobs(cluster: SlurmCluster, out: str) -> dict[str, tuple[str, str]]:
    """Slurm job id -> (state, comment) of every job this snakemake run submitted.

    The plugin puts `rule_<rule>[_wildcards_<values>]` into each job's comment.
    """
    ids = [slurm_id for _, slurm_id in SUBMITTED.findall(out)]
    rows = cluster.run("squeue", "--noheader", "--states=all", "--format=%i|%T|%k").stdout
    known = {}
    for line in rows.splitlines():
        job_id, state, comment = line.strip().split("|", 2)
        known[job_id] = (state, comment)
    return {job_id: known.get(job_id, ("UNKNOWN", "")) for job_id in ids}


def test_cluster_runs_a_batch_job(cluster):
    """The fixture's cluster is real: sbatch queues, slurmd runs, squeue reports."""
    assert cluster.node_state() == "idle"
    job = cluster.sbatch_wrap(
        'srun echo "hello from $SLURM_JOB_ID on $(hostname)"',
        f"--output={cluster.root}/hello-%j.out",
    )
    assert cluster.wait_for_job(job, ("COMPLETED", "FAILED"), timeout=60) == "COMPLETED"
    assert (cluster.root / f"hello-{job}.out").read_text().strip() == (
        f"hello from {job} on {cluster.hostname}"
    )


def job_details(out: str) -> dict[str, dict]:
    """Slurm job id -> {"files": outputs, logs, benchmarks; "reason": why it ran} of each job
    a snakemake run submitted, from the job headers it printed."""
    jobs: dict[str, dict] = {}  # snakemake job id -> details
    current: dict | None = None
    for line in out.splitlines():
        if re.match(r"^(rule|localrule) \w+:$", line):
            current = {"files": set(), "reason": ""}
        elif current is not None and line.startswith("    "):
            key, _, value = line.strip().partition(": ")
            if key in ("output", "log", "benchmark"):
                current["files"].update(v.strip() for v in value.split(","))
            elif key == "reason":
                current["reason"] = value
            elif key == "jobid":
                jobs[value.strip()] = current
        else:
            current = None
    empty = {"files": set(), "reason": ""}
    return {slurm_id: jobs.get(job, empty) for job, slurm_id in SUBMITTED.findall(out)}


def job_blocks(out: str) -> Counter:
    """(kind, rule) -> count of the job headers snakemake printed ('rule x:' / 'localrule x:')."""
    return Counter(re.findall(r"^(rule|localrule) (\w+):$", out, flags=re.MULTILINE))


def assert_same_tables(actual: Path, expected: Path) -> None:
    got, want = parquet_tables(actual), parquet_tables(expected)
    assert want, f"the local run wrote no Parquet file under {expected / 'results'}"
    assert sorted(got) == sorted(want)
    for name, frame in want.items():
        assert_frame_equal(got[name], frame, check_exact=True, check_row_order=True)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    """The smoke config run by the local executor: the reference for the cluster runs. It is
    the session's shared smoke run (tests/pipeline_util.smoke_run: the same config/smoke.yaml
    with `--cores 2`, which the e2e, dry-run and browser tests read too), not a run of its own;
    smoke_run raises with snakemake's output if that run fails."""
    return smoke_run(tmp_path_factory)


def test_smoke_on_slurm_equals_local_run(cluster, workdirs, local_run):
    workdir = copy_workflow(workdirs / "slurm")
    code, out = run_snakemake(workdir, slurm_args(), cluster.env)
    assert code == 0, f"slurm smoke run failed:\n{out[-4000:]}\n{cluster.logs()}"

    # Every simulation job went through sbatch and completed; nothing else was submitted.
    jobs = submitted_jobs(cluster, out)
    assert jobs, "no job was submitted to Slurm"
    assert {state for state, _ in jobs.values()} == {"COMPLETED"}, jobs
    blocks = job_blocks(out)
    remote = Counter({rule: n for (kind, rule), n in blocks.items() if kind == "rule"})
    local = {rule for kind, rule in blocks if kind == "localrule"}
    assert set(remote) == SIMULATION_RULES, f"rules submitted to Slurm: {sorted(remote)}"
    assert sum(remote.values()) == len(jobs)
    submitted_rules = Counter(comment.split("_wildcards_")[0] for _, comment in jobs.values())
    assert submitted_rules == Counter({f"rule_{r}": n for r, n in remote.items()})
    assert {"aggregate_throughput", "aggregate_compaction"} <= local
    assert any(rule.startswith("figures_") for rule in local)

    assert_same_tables(workdir, local_run)


def _wait_for_pending_jobs(cluster: SlurmCluster, proc: subprocess.Popen, workdir: Path):
    """Job ids of the run's first batch, once it has been submitted (all pending)."""
    deadline = time.monotonic() + 120
    seen: list[str] = []
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = (workdir / "snakemake.out").read_text(errors="replace")
            pytest.fail(f"snakemake ended before submitting:\n{out[-4000:]}")
        out = (workdir / "snakemake.out").read_text(errors="replace")
        ids = [slurm_id for _, slurm_id in SUBMITTED.findall(out)]
        # The first batch is complete when the submissions stop growing for a while.
        if ids and ids == seen:
            states = cluster.job_states()
            assert all(states.get(i) == "PENDING" for i in ids), states
            return ids
        seen = ids
        time.sleep(2)
    pytest.fail("snakemake submitted no job within 120 s")


def test_scancel_stops_the_workflow_and_a_rerun_resumes_it(cluster, workdirs, local_run):
    workdir = copy_workflow(workdirs / "cancel")
    # A DOWN partition queues jobs without starting them, so the job is cancelled at a
    # known point (pending), not in a race with its completion.
    cluster.set_partition_state("DOWN")
    try:
        proc = start_snakemake(workdir, slurm_args(), cluster.env)
        try:
            first_batch = _wait_for_pending_jobs(cluster, proc, workdir)
            victim = min(first_batch, key=int)
            cluster.run("scancel", victim)
            cluster.wait_for_job(victim, ("CANCELLED",), timeout=30)
        finally:
            cluster.set_partition_state("UP")
        out = finish(proc, workdir)
    finally:
        cluster.set_partition_state("UP")

    assert proc.returncode != 0, f"the run with a cancelled job succeeded:\n{out[-4000:]}"
    assert f"SLURM-job '{victim}' failed, SLURM status is: 'CANCELLED'" in out, out[-4000:]
    assert "Exiting because a job execution failed" in out
    first = submitted_jobs(cluster, out)
    done = [job for job, (state, _) in first.items() if state == "COMPLETED"]
    completed = {first[job][1] for job in done}
    victim_comment = first[victim][1]
    assert completed, "no other job finished: nothing to check the rerun against"
    # What the finished jobs wrote (run files, logs, benchmarks) must survive the rerun.
    details = job_details(out)
    finished_files = sorted(set().union(*(details[job]["files"] for job in done)))
    assert any(f.endswith(".parquet") for f in finished_files), finished_files
    before = {f: (workdir / f).stat().st_mtime_ns for f in finished_files}

    code, out2 = run_snakemake(workdir, slurm_args(), cluster.env)
    assert code == 0, f"the rerun failed:\n{out2[-4000:]}"
    second = submitted_jobs(cluster, out2)
    details2 = job_details(out2)
    rerun = {comment for _, comment in second.values()}
    assert victim_comment in rerun
    recomputed = {
        comment: details2[job]["reason"]
        for job, (_, comment) in second.items()
        if comment in completed
    }
    assert not recomputed, f"finished jobs recomputed (comment: reason): {recomputed}"
    changed = [f for f, mtime in before.items() if (workdir / f).stat().st_mtime_ns != mtime]
    assert not changed, f"files of finished jobs rewritten by the rerun: {changed}"

    assert_same_tables(workdir, local_run)
