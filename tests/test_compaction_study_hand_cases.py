"""Hand cases of the compaction costing (studies/compaction.py): the run row against its
declared schema, the compact_memory record's keys, every argument check naming its argument
before any work, the defaults a run falls back on, the kernel functions the costs are named
after, the idle task's share of a DMA wake-up, the Poisson tail of the L2 model (against
scipy) and the progress bar leaving nothing behind. Expectations are derived by hand or taken
from a second code path named in the docstring."""

from __future__ import annotations

import math

import numpy as np
import pytest

# every test on both engines of the allocation loop (tests/engines.py)
from engines import loop_engine, pytest_generate_tests  # noqa: E402, F401

from migsim.studies import compaction as study

MIB = 1 << 20


@pytest.fixture(scope="module")
def dma_run(quiet_platform):
    """Two order-9 allocations in dma mode on a 16 MiB node fragmented 50% (even)."""
    return study.run_compaction(
        quiet_platform, mode="dma", node_bytes=16 * MIB, allocations=2, pattern="clustered"
    )


def test_the_row_has_the_declared_columns_in_order(dma_run):
    """row() is the Parquet writer's input: its keys are COMPACTION_RUNS' columns (a second
    declaration, written separately from the row), each once."""
    row = dma_run.row()
    columns = [c.name for c in study.COMPACTION_RUNS.columns]
    assert sorted(row) == sorted(columns) and len(row) == len(columns)
    assert row["pattern"] == "clustered"  # run_compaction passes its pattern on
    assert row["seed"] == 1  # the default seed of run_compaction and simulate
    assert row["user_s"] == 0.0 and row["hog_iterations"] is None  # idle: no hog ran
    assert row["migrate_calls"] == len(dma_run.log.pages) > 0


def test_simulate_defaults_to_seed_1_and_passes_the_pattern(quiet_platform):
    """simulate() without a seed is seed 1 (the published run's); its pattern reaches the
    fragmenter: clustered runs of 16 free pages leave order-4 blocks, the even pattern
    none."""
    sim = study.simulate(quiet_platform, node_bytes=16 * MIB, allocations=1, pattern="clustered")
    assert sim.seed == 1 and sim.pattern == "clustered"
    assert sim.fragmentation["buddyinfo"][4] > 0
    even = study.simulate(quiet_platform, node_bytes=16 * MIB, allocations=1)
    assert even.fragmentation["buddyinfo"][4] == 0


def test_compact_memory_record_keys(quiet_platform):
    """run_compact_memory() returns what the host comparison reads: mode, node size, pages
    migrated, the CPU timeline, the migrate_pages() calls, every /proc/vmstat counter of
    VMSTAT_KEYS and the buddy lists before and after. 64 MiB even 50%: 15 x 256 pages move,
    at most one pageblock's 256 and at least COMPACT_CLUSTER_MAX = 32 per call."""
    r = study.run_compact_memory(quiet_platform, node_bytes=64 * MIB, mode="dma")
    keys = {"mode", "node_bytes", "pages_migrated", "wall_s", "sys_s", "idle_s", "migrate_calls"}
    keys |= set(study.VMSTAT_KEYS)
    keys |= {f"{k}_{w}" for k in ("buddyinfo", "unusable_index_9") for w in ("before", "after")}
    assert set(r) == keys
    assert 3840 // 256 <= r["migrate_calls"] <= 3840 // 32
    assert r["wall_s"] >= r["sys_s"] + r["idle_s"] - 1e-12 and r["idle_s"] > 0


ARGS = {
    "mode": "dma",
    "channels": 2,
    "cluster_max": 32,
    "node_bytes": 16 * MIB,
    "allocations": 2,
    "order": 9,
    "free_ratio": 0.5,
    "pattern": "even",
    "fail_rate": 0.0,
    "min_batch_bytes": 0,
    "state": None,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cluster_max": 0}, r"^cluster_max: must be "),
        ({"cluster_max": 513}, r"^cluster_max: must be "),
        ({"order": 11}, r"^order: must be "),
        ({"allocations": 0}, r"^allocations: must be "),
        ({"fail_rate": 1.5}, r"^fail_rate: must be "),
        ({"min_batch_bytes": -1}, r"^min_batch_bytes: must be "),
        ({"channels": 0}, r"^channels: must be "),
        ({"pattern": "zigzag"}, r"^pattern: must be one of even, random, clustered; got 'zigzag'$"),
        ({"free_ratio": 1.0}, r"^free_ratio: must be in \[0, 1\)"),
        ({"node_bytes": 3 * MIB}, r"^node_bytes: must be at least 4M"),
        ({"allocations": 9}, r"^allocations: 9 x 2M = 18M is more memory than the 16M node$"),
        ({"mode": "fast"}, r"^mode: must be one of "),
    ],
)
def test_check_args_names_each_argument(quiet_platform, change, message):
    """check_args() refuses each bad argument with a message that starts with its name,
    before any work (it fragments nothing): 9 x 2M = 18M does not fit a 16M node."""
    with pytest.raises(ValueError, match=message):
        study.check_args(quiet_platform, **(ARGS | change))


def test_check_args_returns_the_mode_parts(quiet_platform):
    assert study.check_args(quiet_platform, **ARGS) == ("dma", False)
    assert study.check_args(quiet_platform, **(ARGS | {"mode": "busy-baseline"})) == (
        "baseline",
        True,
    )


def test_costs_are_named_after_the_kernel_functions_that_pay_them(quiet_platform):
    """cost_parts(): the nineteen parts outside migrate_pages(), in the CPU's order, each named
    after its mm/ function (the names are the per-page decomposition's labels), but the one
    fitted remainder, which says that it is unnamed."""
    names = [n for n, _, _ in study.cost_parts(quiet_platform)]
    assert names == [
        "isolate_migratepages_block: per pfn",
        "isolate_freepages_block: per pfn",
        "folio_try_get (isolate_migratepages_block)",
        "folio_test_clear_lru, lruvec_del_folio (isolate_migratepages_block)",
        "update_lru_size, node_stat_mod_folio (isolate_migratepages_block)",
        "compact_lock_irqsave (lru_lock, per COMPACT_CLUSTER_MAX pfns)",
        "unnamed per-page work (fitted on the baseline row)",
        "__isolate_free_page",
        "post_alloc_hook (compaction_alloc)",
        "kernel_init_pages (compaction_alloc)",
        "__free_one_page (free_pcppages_bulk)",
        "drain_local_pages (check_drain)",
        "isolate_freepages",
        "compact_zone",
        "__alloc_pages_direct_compact",
        "get_page_from_freelist",
        "post_alloc_hook (prep_new_page)",
        "prep_compound_page",
        "kernel_init_pages (prep_new_page)",
    ]


def test_an_idle_dma_wake_up_leaves_the_switch_in_no_stat_column(quiet_platform, dma_run):
    """On an idle CPU every DMA sleep ends with the switch from the idle task
    (sched.ctx_switch_us) and, if the governor chose C1 (it polls) and the MSI targets
    another CPU, the wake-up's sched_ttwu_pending run by the idle task: time in no /proc/stat
    column (timeline.unaccounted_s). These waits (a 32-page batch: tens of us) are all below
    C2's exit latency x LATENCY_FACTOR, so every sleep polls; busy, nothing is hidden."""
    from migsim.cost.timeline import LATENCY_FACTOR

    s = quiet_platform.sched
    t = dma_run.cost.timeline
    sleeps = int(np.count_nonzero(dma_run.cost.calls.sleep_s > 0))
    assert sleeps > 0
    assert dma_run.cost.calls.sleep_s.max() < LATENCY_FACTOR * s.c2_exit_us * 1e-6
    per_sleep = s.ctx_switch_us + (0.0 if s.msi_on_cpu_switch else s.wakeup_ipi_us)
    assert t.unaccounted_s == pytest.approx(sleeps * per_sleep * 1e-6, rel=1e-9)
    busy = study.cost_log(dma_run.log, quiet_platform, dma=True, busy=True)
    assert busy.timeline.unaccounted_s == 0.0


def test_poisson_cdf_against_scipy_in_float64():
    """P(X <= k), X ~ Poisson(lam), against scipy.stats.poisson.cdf, computed in float64
    whatever the dtype of `lam` (float32 ways-per-set ratios included)."""
    from scipy.stats import poisson

    lam64 = np.array([0.0, 0.1, 1.0, 2.5, 7.0, 30.0])
    for lam in (lam64, lam64.astype(np.float32), [0, 1, 3]):
        want = poisson.cdf(np.arange(0, 17)[:, None], np.asarray(lam, dtype=np.float64))
        for k in range(17):
            got = study.poisson_cdf(k, lam)
            assert got.dtype == np.float64
            assert got == pytest.approx(want[k], rel=1e-12, abs=1e-300)
    assert study.poisson_cdf(0, np.array([2.0]))[0] == pytest.approx(math.exp(-2.0), rel=1e-15)


def test_the_progress_bar_allocates_the_same_and_leaves_no_output(
    quiet_platform, capsys, monkeypatch
):
    """_allocate(progress=True) makes the same calls in steps of 256 (an allocation count that
    is not a multiple of 256 included) and its bar is transient: nothing but a line break is
    left on the console when it ends."""
    import rich

    from migsim.kernel.compaction import Compactor
    from migsim.kernel.fragment import FragmentConfig, fragment

    # rich keeps one global console, made on first use with the terminal settings of then:
    # restore it afterwards, so that a later test's FORCE_COLOR gets a console of its own
    monkeypatch.setattr(rich, "_console", None)
    counts = []
    for progress in (False, True):
        comp = Compactor(fragment(FragmentConfig(node_bytes=16 * MIB)))
        study._allocate(comp, 300, 0, progress)
        counts.append((comp.alloc_success, comp.alloc_fail, dict(comp.vmstat)))
    assert counts[0] == counts[1] and counts[0][0] + counts[0][1] == 300
    out = capsys.readouterr()
    assert out.out.strip() == "" and out.err == ""  # a bar left behind prints its last line


def test_the_l2_term_follows_who_copied_each_batch(quiet_platform, dma_run):
    """cost_log() charges each migrate_pages() call the L2 refill of its copier: with every
    batch offloaded (dma_copies = all 576 pages of the run, min_batch_bytes 0) the engine's
    copy leaves the CPU's caches alone (cpu_copy=False); the baseline run of the same log,
    the CPU copy's 8 KiB per folio between the uses (cpu_copy=True), which evicts more."""
    pages = dma_run.log.pages
    assert dma_run.cost.dma_copies == int(pages.sum()) == 576
    key = "L2 still warm at migrate_folio_move"
    engine = study.l2_refill_s(pages, quiet_platform, cpu_copy=False).sum()
    cpu = study.l2_refill_s(pages, quiet_platform, cpu_copy=True).sum()
    assert engine < cpu < 0  # more lines survive without the CPU copy
    assert dma_run.cost.work_s[key] == pytest.approx(engine, rel=1e-12)
    base = study.cost_log(dma_run.log, quiet_platform, dma=False, busy=False)
    assert base.work_s[key] == pytest.approx(cpu, rel=1e-12)


def test_simulate_passes_its_free_ratio_and_capture_context(quiet_platform):
    """A 16 MiB node keeps one 2M pageblock for the kernel (default_reserved_bytes); the 7
    regions of the fragmenter lose free_ratio x 512 pages each: 7 x 128 = 896 at 0.25. The
    capture context reaches the run; a context outside task/kthread is refused by name."""
    sim = study.simulate(quiet_platform, node_bytes=16 * MIB, allocations=1, free_ratio=0.25)
    assert sim.fragmentation["free_pages"] == 7 * 128 and sim.free_ratio == 0.25
    kthread = study.simulate(quiet_platform, node_bytes=16 * MIB, allocations=1, capture="kthread")
    assert kthread.capture == "kthread" and sim.capture == "task"
    with pytest.raises(ValueError, match=r"^capture: must be one of task, kthread, got 'x'$"):
        study.simulate(quiet_platform, node_bytes=16 * MIB, allocations=1, capture="x")
