"""One simulation, many costings: the page-level compaction run from a saved state does not
depend on the mode, the channel count, the DMA failure rate, the noise or the run's seed, so
the pipeline simulates it once and costs it for every mode and run. Proved here: independent
simulations of every mode and run have identical per-call logs, and the shared-simulation job
writes exactly the rows that one run_compaction() per mode and run gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from migsim.cost.platform import DEFAULT_PLATFORM
from migsim.kernel.fragment import FragmentConfig, fragment, save_state
from migsim.pipeline import COMPACTION_CONTROL_FLOW, cell_seed, simulate_compaction_modes
from migsim.studies.compaction import COMPACTION_RUNS, MODES, run_compaction, simulate

MB = 1 << 20
CONTROL = {
    "cluster_max": 32,
    "node_bytes": 256 * MB,
    "allocations": 40,
    "free_ratio": 0.5,
    "pattern": "random",
}


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    cfg = FragmentConfig(node_bytes=CONTROL["node_bytes"], pattern="random", seed=4)
    path = tmp_path_factory.mktemp("state") / "fragmentation.npz"
    save_state(fragment(cfg), path, cfg)
    return path


def job(mode: str) -> dict:
    """A compaction job's parameters (as migsim.pipeline.compaction_params gives them), with
    costs that draw random numbers (noise, DMA failures) so that the seeds matter."""
    return {
        "mode": mode,
        "channels": 2,
        "runs": 2,
        "noise": True,
        "fail_rate": 0.05,
        "min_batch_bytes": 0,
        "seed": 7,
        **CONTROL,
    }


def run_seeds():
    return [(m, r, cell_seed(7, "compaction", m, r)) for m in MODES for r in range(2)]


def test_the_control_flow_keys_are_the_simulation_arguments():
    assert set(COMPACTION_CONTROL_FLOW) == set(CONTROL)


def test_every_mode_and_run_has_the_same_per_call_log(platform, state):
    sims = [simulate(platform, **CONTROL, seed=s, state=state) for _, _, s in run_seeds()]
    ref = sims[0]
    assert ref.migrate_calls > 40  # the run did compact
    for sim in sims[1:]:
        for name in ("pages", "work", "tail", "marks"):
            assert np.array_equal(getattr(sim.log, name), getattr(ref.log, name)), name
        assert sim.vmstat == ref.vmstat and sim.migrate_calls == ref.migrate_calls


def test_the_shared_simulation_writes_the_rows_of_one_run_per_mode(platform, state, tmp_path):
    outs = [str(tmp_path / f"{m}.parquet") for m in MODES]
    simulate_compaction_modes(str(DEFAULT_PLATFORM), str(state), [job(m) for m in MODES], outs)
    for mode, out in zip(MODES, outs, strict=True):
        p = job(mode)
        rows = [
            run_compaction(
                platform, mode=mode, channels=p["channels"], fail_rate=p["fail_rate"],
                noise=True, seed=cell_seed(7, "compaction", mode, r), state=state, **CONTROL,
            ).row()
            for r in range(p["runs"])
        ]  # fmt: skip
        got = pl.read_parquet(out).sort("seed")  # the file is sorted by the schema's key
        assert got.equals(COMPACTION_RUNS.frame(rows).sort("seed")), mode
    walls = {pl.read_parquet(o)["wall_ms"][0] for o in outs}
    assert len(walls) == len(MODES)  # the costs differ: the modes were costed apart


def test_the_shared_traced_simulation_writes_each_modes_own_trace(platform, state, tmp_path):
    """Rule compaction_trace's job (kernel_formats.trace_modes: one traced simulation costed
    for every mode) writes the trace text and Parquet files that an independent traced
    simulation of each mode gives, byte for byte."""
    from migsim.pipeline import cost_mode_run, simulate_from_state
    from migsim.studies.kernel_formats import trace_modes, write_trace

    jobs = [job(m) for m in MODES]
    texts = [str(tmp_path / f"{m}.trace") for m in MODES]
    events = [str(tmp_path / f"{m}.parquet") for m in MODES]
    trace_modes(str(DEFAULT_PLATFORM), str(state), jobs, texts, events, 10**6)
    for p, text, ev in zip(jobs, texts, events, strict=True):
        res = cost_mode_run(
            simulate_from_state(platform, p, str(state), trace=True), platform, p, 0
        )
        write_trace(res, tmp_path / "alone.trace", 10**6, text=True)
        write_trace(res, tmp_path / "alone.parquet", 10**6, text=False)
        assert (tmp_path / "alone.trace").read_bytes() == Path(text).read_bytes(), p["mode"]
        assert (tmp_path / "alone.parquet").read_bytes() == Path(ev).read_bytes(), p["mode"]
    assert len({Path(t).read_bytes() for t in texts}) == len(MODES)  # costed apart
