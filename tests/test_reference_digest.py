"""The page-level control flow pinned by digests of reference runs: every counter, every
migrate_pages() call's log row, every frame's state and every page's content tag at the end.

A refactoring of the allocation loop, the scanners or the buddy/pcp code (making it faster,
flattening call chains) must leave all of it identical: these digests are what "identical" means.
They were produced by the code as it stood before the allocation loop was flattened (issue 17).

**When a digest may change, and how to regenerate it.** Only a commit that deliberately
changes the control flow (a new kernel mechanism in the scanners, a different capture or
drain rule, another fragmentation pattern: which pages move, in which calls) may update a
digest, and it says so and why in its message. Regenerate with

    PYTHONPATH=src python tests/test_reference_digest.py

which runs every scenario (the full-scale one too, ~3 s), prints the ``DIGESTS`` dict to paste
below, and for each scenario whose digest changed the counters and call counts that differ
from the stored summary (paste ``SUMMARIES`` too), so the commit message can state the
change in numbers. A speed-up never updates a digest.
"""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import pytest

from migsim.kernel.compaction import Compactor
from migsim.kernel.fragment import FragmentConfig, fragment
from migsim.kernel.zone import KERNEL, LRU, MIGRATE_UNMOVABLE, Zone
from migsim.studies.compaction import RUN_COUNTERS

MB = 1 << 20
TAG_CHUNK = 1 << 22  # frames hashed per step (a 250 GB zone's tags would be 0.5 GB at once)


def zone_digest(h, zone: Zone) -> None:
    """Feed every piece of zone state that later calls can observe into the hash `h`."""
    for name in ("state", "migratetype", "skip", "nr_free_pb"):
        arr = getattr(zone, name)
        h.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    for lo in range(0, zone.nr_pages, TAG_CHUNK):
        pfns = np.arange(lo, min(lo + TAG_CHUNK, zone.nr_pages), dtype=np.int64)
        h.update(zone.content_tag(pfns).astype("<i8").tobytes())
    h.update(zone.pcp.pfns().astype("<i8").tobytes())
    scalars = {
        "nr_free": zone.nr_free,
        "buddyinfo": zone.free_area_counts().tolist(),
        "pcp": [zone.pcp.count, zone.pcp.free_count, zone.pcp.high, zone.pcp.batch],
        "buddy_frees": zone.buddy_frees,
        "cached": [*zone.compact_cached_migrate_pfn, zone.compact_cached_free_pfn],
        "init": [zone.compact_init_migrate_pfn, zone.compact_init_free_pfn],
        "defer": [zone.compact_considered, zone.compact_defer_shift, zone.compact_order_failed],
        "blockskip_flush": zone.compact_blockskip_flush,
    }
    h.update(json.dumps(scalars, sort_keys=True).encode())


def run_digest(counters: dict, log, zone: Zone) -> str:
    """sha256 of the run's counters, its per-call log and the zone it leaves."""
    h = hashlib.sha256()
    h.update(json.dumps(counters, sort_keys=True).encode())
    for name in ("pages", "work", "tail"):
        arr = getattr(log, name).astype("<i8")
        h.update(f"{name}:{arr.shape}".encode())
        h.update(arr.tobytes())
    zone_digest(h, zone)
    return h.hexdigest()


def summary(counters: dict, log) -> dict:
    """A readable digest companion: the counters and the log's totals."""
    return {
        **{k: int(v) for k, v in counters.items() if not isinstance(v, list)},
        "calls": len(log.pages),
        "work_total": (log.work.sum(0) + log.tail).tolist(),
    }


def compactor_counters(c: Compactor) -> dict:
    return {
        **c.vmstat,
        **{k: getattr(c, k) for k in RUN_COUNTERS},
        "allocated": [int(p) for p in c.allocated],
    }


def small(mb: int, **kw) -> Zone:
    pcp = {k: kw.pop(k) for k in ("pcp_high", "pcp_batch") if k in kw}
    return fragment(FragmentConfig(node_bytes=mb * MB, reserved_bytes=2 * MB, **kw), **pcp)


def with_unmovable(z: Zone, seed: int) -> Zone:
    """Scatter unmovable kernel pages in a few movable pageblocks and mark some pageblocks
    unmovable: the async scanner's skip_on_failure and suitable_migration_source paths."""
    rng = np.random.default_rng(seed)
    lru = np.flatnonzero(z.state == LRU)
    z.state[rng.choice(lru, size=len(lru) // 400, replace=False)] = KERNEL
    blocks = rng.choice(z.nr_blocks - 1, size=z.nr_blocks // 10, replace=False)
    z.migratetype[blocks] = MIGRATE_UNMOVABLE
    z.recount()
    return z


def allocate(z: Zone, order: int, n: int, *, cluster_max: int = 32, compact_first=False):
    c = Compactor(z, cluster_max=cluster_max)
    if compact_first:
        c.compact_memory()
        z.drain_pages()
    for _ in range(n):
        c.alloc_pages_node(order)
    return compactor_counters(c), c.log(), z


SCENARIOS = {
    "even_64M_order9_x40": lambda: allocate(small(64), 9, 40),
    "random_128M_pcp0_cluster8_x30": lambda: allocate(
        small(128, pattern="random", seed=5, pcp_high=0, pcp_batch=1), 9, 30, cluster_max=8
    ),
    "clustered_64M_order9_x20": lambda: allocate(
        small(64, pattern="clustered", free_ratio=0.25, seed=2), 9, 20
    ),
    "even_32M_order3_x400": lambda: allocate(small(32), 3, 400),
    "unmovable_96M_order9_x40": lambda: allocate(
        with_unmovable(small(96, pattern="random", free_ratio=0.75, seed=9), 4), 9, 40
    ),
    "compact_memory_random_32M_then_order9_x10": lambda: allocate(
        small(32, pattern="random", seed=3), 9, 10, compact_first=True
    ),
    "even_256M_order10_x12": lambda: allocate(small(256), 10, 12),
}

# name -> sha256 (see the module docstring before changing one), and what each run did
# fmt: off
DIGESTS = {
    "clustered_64M_order9_x20": "064632fb0f6770c518a9f16cbeff26db98e073714f0b1701ef68cca6c1af3896",
    "compact_memory_random_32M_then_order9_x10": "c18e7332cc325506a0c3da91f8b53842e7efa3580c7738a11ea59748a233b95d",
    "even_256M_order10_x12": "7756832e61510eb1d6da25d35f3f2c8cd6062fbff3c93868bdba20df4b8178a5",
    "even_32M_order3_x400": "af96d382278ae7a71526d27044368b9df2cabfc4864a7aa8441b58bd7d171068",
    "even_64M_order9_x40": "4ab6eae867f321a8afe84297d86d6b484fc0cf64c6f9ac1a9c05060aada83491",
    "random_128M_pcp0_cluster8_x30": "23381d31d83093fe54f3edb293d785550ca8f11227bd20619a84118695c78b14",
    "unmovable_96M_order9_x40": "394ae020954b8970ee27da5047a94164b70337b6d68472738afea1c8320ac121",
    "full_scale_250G_order9_x16384": "583e967ee04ad9fe933af983f7b88e7dee64cd4bf4142e4d430d8c5aac5c930c",
}
SUMMARIES = {
    "clustered_64M_order9_x20": {"pgmigrate_success": 2432, "pgmigrate_fail": 416, "compact_stall": 35, "compact_success": 5, "compact_fail": 30, "compact_migrate_scanned": 3824, "compact_free_scanned": 10896, "compact_isolated": 5280, "alloc_success": 5, "alloc_fail": 15, "migrate_calls": 17, "capture_in_migrate": 1, "capture_in_drain": 4, "batches_after_capture": 4, "pages_after_capture": 128, "calls": 17, "work_total": [3824, 10896, 2848, 2432, 2432, 35, 50, 5, 2560, 10, 6, 18]},
    "compact_memory_random_32M_then_order9_x10": {"pgmigrate_success": 1792, "pgmigrate_fail": 0, "compact_stall": 0, "compact_success": 0, "compact_fail": 0, "compact_migrate_scanned": 3584, "compact_free_scanned": 3584, "compact_isolated": 3584, "alloc_success": 7, "alloc_fail": 3, "migrate_calls": 13, "capture_in_migrate": 0, "capture_in_drain": 0, "batches_after_capture": 0, "pages_after_capture": 0, "calls": 13, "work_total": [3584, 3584, 1792, 1792, 1792, 6, 10, 7, 3584, 1, 0, 13]},
    "even_256M_order10_x12": {"pgmigrate_success": 9344, "pgmigrate_fail": 0, "compact_stall": 12, "compact_success": 12, "compact_fail": 0, "compact_migrate_scanned": 18688, "compact_free_scanned": 21364, "compact_isolated": 18688, "alloc_success": 12, "alloc_fail": 0, "migrate_calls": 81, "capture_in_migrate": 0, "capture_in_drain": 12, "batches_after_capture": 12, "pages_after_capture": 384, "calls": 81, "work_total": [18688, 21364, 9344, 9344, 9312, 12, 12, 12, 12288, 12, 23, 81]},
    "even_32M_order3_x400": {"pgmigrate_success": 1632, "pgmigrate_fail": 8, "compact_stall": 144, "compact_success": 58, "compact_fail": 86, "compact_migrate_scanned": 80232, "compact_free_scanned": 107575, "compact_isolated": 3272, "alloc_success": 400, "alloc_fail": 0, "migrate_calls": 59, "capture_in_migrate": 57, "capture_in_drain": 1, "batches_after_capture": 0, "pages_after_capture": 0, "calls": 59, "work_total": [80232, 107575, 1640, 1632, 1629, 144, 486, 400, 3200, 144, 1, 59]},
    "even_64M_order9_x40": {"pgmigrate_success": 2816, "pgmigrate_fail": 288, "compact_stall": 71, "compact_success": 9, "compact_fail": 62, "compact_migrate_scanned": 6208, "compact_free_scanned": 7991, "compact_isolated": 5920, "alloc_success": 9, "alloc_fail": 31, "migrate_calls": 29, "capture_in_migrate": 1, "capture_in_drain": 8, "batches_after_capture": 8, "pages_after_capture": 256, "calls": 29, "work_total": [6208, 7991, 3104, 2816, 2816, 71, 102, 9, 4608, 15, 10, 30]},
    "random_128M_pcp0_cluster8_x30": {"pgmigrate_success": 7424, "pgmigrate_fail": 0, "compact_stall": 30, "compact_success": 29, "compact_fail": 1, "compact_migrate_scanned": 14848, "compact_free_scanned": 20961, "compact_isolated": 14848, "alloc_success": 29, "alloc_fail": 1, "migrate_calls": 56, "capture_in_migrate": 29, "capture_in_drain": 0, "batches_after_capture": 0, "pages_after_capture": 0, "calls": 56, "work_total": [14848, 20961, 7424, 7424, 7424, 32, 31, 29, 14848, 30, 0, 56]},
    "unmovable_96M_order9_x40": {"pgmigrate_success": 2688, "pgmigrate_fail": 509, "compact_stall": 64, "compact_success": 16, "compact_fail": 48, "compact_migrate_scanned": 13876, "compact_free_scanned": 7511, "compact_isolated": 5885, "alloc_success": 16, "alloc_fail": 24, "migrate_calls": 55, "capture_in_migrate": 1, "capture_in_drain": 15, "batches_after_capture": 15, "pages_after_capture": 480, "calls": 55, "work_total": [13876, 7511, 3197, 2688, 2688, 64, 88, 16, 8192, 22, 22, 55]},
    "full_scale_250G_order9_x16384": {"pgmigrate_success": 4718528, "pgmigrate_fail": 0, "compact_stall": 16383, "compact_success": 16383, "compact_fail": 0, "compact_migrate_scanned": 9437056, "compact_free_scanned": 14138433, "compact_isolated": 9437056, "alloc_success": 16384, "alloc_fail": 0, "migrate_calls": 49149, "capture_in_migrate": 0, "capture_in_drain": 16383, "batches_after_capture": 16382, "pages_after_capture": 524224, "calls": 49149, "work_total": [9437056, 14138433, 4718528, 4718528, 4718496, 16383, 16384, 16384, 8388608, 16383, 16383, 49149]},
}
# fmt: on


def full_scale_counters(sim) -> dict:
    return {**sim.vmstat, **{k: getattr(sim, k) for k in RUN_COUNTERS}}


# Change detectors, not model tests: a digest pins what the code did when it was stored, right
# or wrong (test_the_digest_sees_one_moved_tag_and_one_log_row tests the digest itself).
@pytest.mark.change_detector
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_small_reference_runs_are_unchanged(name):
    counters, log, zone = SCENARIOS[name]()
    zone.check()
    assert run_digest(counters, log, zone) == DIGESTS[name], (name, summary(counters, log))


@pytest.mark.change_detector
@pytest.mark.slow
def test_full_scale_reference_run_is_unchanged(full_scale):
    sim = full_scale.sim
    counters = full_scale_counters(sim)
    got = run_digest(counters, sim.log, full_scale.zone)
    assert got == DIGESTS["full_scale_250G_order9_x16384"], summary(counters, sim.log)


def test_the_digest_sees_one_moved_tag_and_one_log_row():
    counters, log, zone = SCENARIOS["even_64M_order9_x40"]()
    ref = run_digest(counters, log, zone)
    pfn = int(np.flatnonzero(zone.state == LRU)[0])
    tag = zone.content_tag(np.array([pfn]))
    zone.set_content(np.array([pfn]), tag + 1)
    assert run_digest(counters, log, zone) != ref
    zone.set_content(np.array([pfn]), tag)
    log.work[len(log.pages) // 2, 1] += 1
    assert run_digest(counters, log, zone) != ref


def _regenerate() -> None:
    from migsim.cost.platform import DEFAULT_PLATFORM, load_platform
    from migsim.studies.compaction import simulate

    digests, summaries = {}, {}
    for name in sorted(SCENARIOS):
        counters, log, zone = SCENARIOS[name]()
        digests[name], summaries[name] = run_digest(counters, log, zone), summary(counters, log)
    platform = load_platform(DEFAULT_PLATFORM)
    zone = fragment(FragmentConfig(), node_cpus=platform.compaction.node_cpus_count)
    sim = simulate(platform, seed=1, state=zone)
    name = "full_scale_250G_order9_x16384"
    counters = full_scale_counters(sim)
    digests[name], summaries[name] = run_digest(counters, sim.log, zone), summary(counters, sim.log)
    for name, d in digests.items():
        if d != DIGESTS.get(name):
            old = SUMMARIES.get(name, {})
            diff = {k: (old.get(k), v) for k, v in summaries[name].items() if old.get(k) != v}
            print(f"# {name} changed: {diff}", file=sys.stderr)
    print("DIGESTS = " + json.dumps(digests, indent=4).replace("\n}", ",\n}"))
    lines = [f"    {json.dumps(k)}: {json.dumps(v)}," for k, v in summaries.items()]
    print("SUMMARIES = {\n" + "\n".join(lines) + "\n}")


if __name__ == "__main__":
    _regenerate()
