"""Kernel CPU profile of a real ``compact_memory`` per migrated page (the source of the
compaction per-op priors, issue 12).

Run (root, under ``flock /tmp/host.lock``)::

    PYTHONPATH=src python -m migsim.host.profile --size 2G --ratio 0.5 \\
        --out config/host_compaction_profile.csv
    ... --trigger thp-fault --out config/host_compaction_profile_direct_run1.csv
    ... --prefault --out config/host_compaction_profile_prefault.csv
    ... --layout shuffled --prefault --out config/host_compaction_profile_shuffled.csv

It fragments an anonymous region exactly as the host twin does (``twin.twin_run``: THP faults,
split with MADV_COLD, MADV_NOHUGEPAGE, MADV_DONTNEED of the pattern's pages), then runs
``echo 1 > /proc/sys/vm/compact_memory`` in a child ``sh`` under ``perf record -e cpu-clock``
(software timer sampling, works in a VM without PMU counters) and splits the child's kernel
samples by function (self time) and by the call-graph ancestor they run under (mm/compaction.c
isolate_migratepages_block, isolate_freepages_block, compaction_alloc, mm/migrate.c
migrate_pages_batch children, ...). Every number is divided by the pgmigrate_success delta of
/proc/vmstat over the same write: microseconds of this host's kernel CPU per migrated page.

``--layout shuffled`` faults the region in as 4 KiB pages in a random virtual order instead
(MADV_NOHUGEPAGE first), so that a page's pfn says nothing about its virtual address, and frees
the pages of odd pfn (root reads them from /proc/self/pagemap): the same pfn-space pattern as
the THP-split layout at ratio 0.5, but compaction's pfn-order walk of the sources then reaches
their PTEs in random order (mm/rmap.c rmap_walk_anon -> try_to_migrate_one /
remove_migration_pte -> page_vma_mapped_walk of a different page-table line per folio).
``--layout sequential`` faults the region in as 4 KiB pages in ascending virtual order (MADV_NOHUGEPAGE
first: one write per page, as the published fragmenter touched its 248 GB) and frees the pages of
odd pfn: every other frame, as the published "free 50% at evenly spaced offsets" did. The header's
``pfn_next_frac`` says how often the next virtual page is the next frame.
``--ballast`` (compact_memory) fills MemFree but BALLAST_SPARE with THPs before the holes are
freed, so that compaction moves the region's pages (both scanners step over the THPs).
``--period 0`` runs no perf: the write is made by this thread and its CPU seconds
(probe.trigger_compaction's cpu_s) over pgmigrate_success are the only number (no split, no
sampling overhead). ``--summary`` reads profile CSVs and prints their per-run table
(scale_table) and the line of each part against log2 of the region size (size_slope).

The size study of issue 12 (a metadata working set larger than the caches: does kernel CPU per
migrated page grow with the region?)::

    for size in 512M 2G 4G 8G 12G 16G: ... --size $size --layout sequential --ballast \
        --period 50000 (and 0) --out config/host_compaction_scale/seq-$size-p$period-r$run.csv
    ... --summary config/host_compaction_scale/*.csv --out config/host_compaction_scale.csv

``--prefault`` touches and frees most of MemAvailable first: in a VM the guest's never-used
frames are backed by the hypervisor only at their first write, which then lands in the copy
(copy_mc_enhanced_fast_string) of the compaction that first writes them.

Settings changed and restored (also on error): THP enabled (only if 'never'),
compaction_proactiveness (0), kernel.perf_event_paranoid (-1), kernel.kptr_restrict (0).
The model simplifies nothing here: this is a measurement; the model's use of it is in
cost/platform.py (each prior names the row of the CSV it comes from).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

PARANOID = Path("/proc/sys/kernel/perf_event_paranoid")
KPTR = Path("/proc/sys/kernel/kptr_restrict")
PERIOD_NS = 20_000  # default cpu-clock sampling period: one sample per 20 us of CPU
PERIOD_RANGE_NS = (1_000, 1_000_000)  # --period: allowed sampling periods, ns
# --size: MemAvailable that a run leaves to the other tasks of the host at its peak (the region
# faulted in whole): the 3 GiB floor of the shared host and 1 GiB for the region's page tables,
# perf's buffers and the pagemap copy
SIZE_SPARE = 4 << 30
MEM_FLOOR = 3 << 30  # MemAvailable below this after the fill: the run stops and frees the region

# Inclusive groups: a sample is charged to the FIRST of these found walking its call chain from
# the leaf up (so the innermost named mechanism wins: folio_copy under migrate_pages_batch is
# "copy", not "migrate_pages_batch"). Names are kernel functions (mm/compaction.c, mm/migrate.c,
# mm/rmap.c, mm/page_alloc.c, arch/x86/mm/tlb.c) of 6.x kernels.
GROUPS: list[tuple[str, tuple[str, ...]]] = [
    (
        "copy",
        (
            "folio_copy",
            "folio_mc_copy",
            "copy_mc_enhanced_fast_string",
            "copy_page",
            "copy_mc_to_kernel",
            "copy_highpage",
            "copy_mc_fragile",
        ),
    ),
    (
        "tlb_flush",
        (
            "flush_tlb_mm_range",
            "try_to_unmap_flush",
            "arch_tlbbatch_flush",
            "native_flush_tlb_multi",
            "flush_tlb_func",
            "smp_call_function_many_cond",
        ),
    ),
    ("rmap_unmap", ("try_to_migrate", "try_to_migrate_one")),
    ("rmap_remap", ("remove_migration_ptes", "remove_migration_pte")),
    ("memcg_migrate", ("mem_cgroup_migrate",)),
    (
        "move_mapping",
        (
            "folio_migrate_mapping",
            "__folio_migrate_mapping",
            "folio_migrate_flags",
            "folio_migrate_copy",
        ),
    ),
    (
        "free_one_page",
        (
            "__free_one_page",
            "free_pcppages_bulk",
            "free_one_page",
            "free_unref_page",
            "free_unref_folios",
            "__free_pages_ok",
            "free_frozen_pages",
            "free_pages_prepare",
        ),
    ),
    ("split_page", ("split_page", "split_free_page", "__split_free_pages")),
    (
        "post_alloc",
        (
            "post_alloc_hook",
            "prep_new_page",
            "clear_page_erms",
            "clear_page_rep",
            "clear_page_orig",
            "kernel_init_pages",
        ),
    ),
    ("compaction_alloc", ("compaction_alloc", "compaction_alloc_noprof", "compaction_free")),
    (
        "isolate_freepages",
        (
            "isolate_freepages_block",
            "fast_isolate_freepages",
            "isolate_freepages",
            "__isolate_free_page",
        ),
    ),
    (
        "putback_lru",
        (
            "putback_movable_pages",
            "putback_lru_page",
            "folio_putback_lru",
            "folio_add_lru",
            "lru_add_drain",
            "lru_add_drain_cpu",
            "folio_batch_move_lru",
            "lru_add",
            "lru_add_fn",
            "__pagevec_lru_add",
        ),
    ),
    (
        "isolate_migratepages",
        (
            "isolate_migratepages_block",
            "isolate_migratepages",
            "folio_isolate_lru",
            "isolate_lru_page",
        ),
    ),
    (
        "migrate_pages_other",
        (
            "migrate_pages_batch",
            "migrate_pages",
            "migrate_folio_unmap",
            "migrate_folio_move",
            "move_to_new_folio",
            "migrate_folio",
            "migrate_pages_sync",
        ),
    ),
    ("lru_drain_all", ("lru_add_drain_all", "__lru_add_drain_all")),
    (
        "compact_zone_other",
        (
            "compact_zone",
            "__compact_zone",
            "compact_node",
            "compact_nodes",
            "sysctl_compaction_handler",
            "__compact_finished",
            "compact_finished",
        ),
    ),
]


def parse_script(
    text: str, comm_name: str = "sh", within: tuple[str, ...] = ()
) -> tuple[collections.Counter, collections.Counter, int, int]:
    """`perf script -F comm,ip,sym` output -> (samples by group, samples by self symbol,
    kernel samples of the task `comm_name`, all samples of it). With `within`, only the
    samples whose call chain passes through one of those functions count (e.g. the direct
    compaction of a THP fault: __alloc_pages_direct_compact)."""
    by_group: collections.Counter = collections.Counter()
    by_self: collections.Counter = collections.Counter()
    kernel = total = 0
    chain: list[str] = []
    comm = ""

    def flush() -> None:
        nonlocal kernel, total
        if not chain or comm != comm_name:
            return
        if within and not any(sym in within for sym in chain):
            return
        total += 1
        leaf = chain[0]
        if leaf.startswith("[unknown]"):
            return
        kernel += 1
        by_self[leaf] += 1
        for sym in chain:
            for g, names in GROUPS:
                if sym in names:
                    by_group[g] += 1
                    return
        by_group["other"] += 1

    for line in text.splitlines():
        if not line.strip():
            flush()
            chain, comm = [], ""
        elif not line.startswith((" ", "\t")):
            comm = line.split()[0]
        else:
            parts = line.split()
            sym = parts[1] if len(parts) > 1 else "[unknown]"
            chain.append(sym.split("+")[0])
    flush()
    return by_group, by_self, kernel, total


LAYOUTS = ("thp-split", "shuffled", "sequential")
# the layouts that free the odd pfns (pattern even, ratio 0.5 only)
ODD_PFN_LAYOUTS = ("shuffled", "sequential")
TRIGGERS = ("compact_memory", "thp-fault")
PREFAULT_SPARE = 3 << 30  # bytes of MemAvailable that --prefault leaves untouched
# thp-fault: MemFree left beside the ballast before the region's holes are freed, and what
# the faulting child asks for as THPs: the spare and 0.5 GiB more, which only compaction of
# the region (half free) can give
THP_SPARE = 5 << 29  # 2.5 GiB
# --ballast (compact_memory): MemFree left beside a THP ballast, so that the free memory is the
# region's holes and this spare (MEM_FLOOR and 0.5 GiB): compaction then moves the region's
# pages, not nothing (a free node's scanners meet before the region: 542 pages of a 512M
# region moved without one), and the ballast's THPs are skipped by both scanners
# (isolate_migratepages_block and isolate_freepages_block step over compound pages)
BALLAST_SPARE = 7 << 29  # 3.5 GiB
THP_FAULT = 6 << 29  # 3 GiB
# the samples of the faulting child that belong to its direct compaction
DIRECT = ("__alloc_pages_direct_compact", "try_to_compact_pages")
# the child: THP faults over a MADV_HUGEPAGE region, one write per 4 KiB (defrag "madvise":
# the fault's allocation enters direct compaction, in task context, so it can capture)
THP_CHILD = (
    "import sys; from migsim.host.probe import AnonRegion, MADV_HUGEPAGE\n"
    "r = AnonRegion(int(sys.argv[1])); r.madvise(MADV_HUGEPAGE); r.touch(); r.close()"
)
VMSTAT_EXTRA = ("compact_daemon_migrate_scanned", "thp_fault_alloc", "thp_fault_fallback")


@contextlib.contextmanager
def thp_filled(field: str, spare: int) -> Iterator[int]:
    """An anonymous region of /proc/meminfo's `field` (MemAvailable, MemFree) less `spare`
    bytes, faulted in as THPs (MADV_HUGEPAGE, one write per page) and held until the block
    ends; yields its size in bytes (0: nothing to take)."""
    from migsim.host import probe

    align = probe.AnonRegion.ALIGN
    nbytes = (probe.meminfo_bytes(field) - spare) // align * align
    if nbytes <= 0:
        yield 0
        return
    with probe.AnonRegion(nbytes) as region:
        region.madvise(probe.MADV_HUGEPAGE)
        region.touch()
        yield nbytes


def prefault_free_memory(spare: int = PREFAULT_SPARE) -> int:
    """Write one byte of every page of MemAvailable - `spare` bytes (as THPs), then unmap it:
    every free frame the compaction may take as a target has been written once (VM guests:
    backed by the hypervisor). Returns the bytes touched."""
    with thp_filled("MemAvailable", spare) as nbytes:
        return nbytes


def fill_faulted(region, order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fault `region` in as order-0 pages (MADV_NOHUGEPAGE), one write per page in the virtual
    order `order` (page indices; None: ascending); returns the boolean mask of the pages to
    free, those of odd pfn (every other frame of the region's frames), and the pfn of each
    page (the one pagemap read, region.pfns())."""
    from migsim.host.probe import MADV_NOHUGEPAGE

    region.madvise(MADV_NOHUGEPAGE)
    a = region.array()
    if order is None:
        a[::4096] = 1  # one write per page, ascending
    else:
        a[order * 4096] = 1  # one write per page, in the given order
    del a
    pfns = region.pfns()
    if (pfns <= 0).any():
        raise RuntimeError("layout: pagemap shows no pfns (needs CAP_SYS_ADMIN)")
    return (pfns % 2) == 1, pfns


def fill_shuffled(region, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """fill_faulted in a random virtual order (numpy's default_rng(seed) permutation)."""
    return fill_faulted(region, np.random.default_rng(seed).permutation(region.nr_pages))


def pfn_next_frac(pfns: np.ndarray) -> float:
    """Share of consecutive virtual pages whose frames are consecutive too (pfn + 1): 1.0 when
    virtual order is frame order, ~0 for a shuffled fill."""
    present = pfns > 0  # 0: not present, or a pagemap read without CAP_SYS_ADMIN (as fill_faulted)
    ok = present[1:] & present[:-1]
    if not ok.any():
        return 0.0
    return float(((np.diff(pfns) == 1) & ok).sum() / ok.sum())


def check_profile_size(size: int) -> int:
    """--size rounded down to whole pageblocks; refuses a region that would leave less than
    SIZE_SPARE of MemAvailable at its peak (the whole region faulted in)."""
    from migsim.host import probe
    from migsim.units import PAGE_SIZE, PAGEBLOCK_NR_PAGES

    block = PAGEBLOCK_NR_PAGES * PAGE_SIZE
    avail = probe.mem_available_bytes()
    top = max(avail - SIZE_SPARE, 0) // block * block
    if not block <= size <= top:
        raise ValueError(
            f"size: must be 2M to MemAvailable less {SIZE_SPARE >> 30} GiB "
            f"({top >> 20}M now), got {size >> 20}M"
        )
    return size - size % block


def run(
    size: str,
    ratio: float,
    pattern: str,
    seed: int,
    layout: str = "thp-split",
    prefault: bool = False,
    trigger: str = "compact_memory",
    period_ns: int = PERIOD_NS,
    ballast: bool = False,
) -> dict:
    """One profiled compaction (root; hold /tmp/host.lock). Returns the counts and vmstat.

    `trigger` "compact_memory": the write of /proc/sys/vm/compact_memory by a child ``sh``
    (compact_nodes, cc->order -1: no capture, no check_drain). "thp-fault": the direct
    compaction of THP faults, as the published experiment's allocations do it
    (__alloc_pages_slowpath -> __alloc_pages_direct_compact -> compact_zone with capture and
    check_drain): a THP ballast takes all of MemFree but THP_SPARE and the fragmented region,
    then a child python faults THP_FAULT bytes of MADV_HUGEPAGE memory; only its samples under
    DIRECT count, and the pages are pgmigrate_success times the direct share of the migrate
    scanner's pfns (1 - compact_daemon_migrate_scanned / compact_migrate_scanned: kcompactd
    also runs). `period_ns`: perf's cpu-clock sampling period (PERIOD_RANGE_NS). `ballast`
    (compact_memory only): a THP ballast takes MemFree but BALLAST_SPARE before the holes
    are freed."""
    from migsim.host import probe
    from migsim.host.twin import PB
    from migsim.units import parse_size

    if layout not in LAYOUTS:
        raise ValueError(f"layout: must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    if layout in ODD_PFN_LAYOUTS and (pattern != "even" or ratio != 0.5):
        raise ValueError(f"layout: {layout} frees the odd pfns: needs --pattern even --ratio 0.5")
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger: must be one of {', '.join(TRIGGERS)}; got {trigger!r}")
    lo, hi = PERIOD_RANGE_NS
    if period_ns != 0 and not lo <= period_ns <= hi:
        raise ValueError(f"period: must be 0 (no perf) or {lo} to {hi} ns, got {period_ns}")
    if period_ns == 0 and trigger != "compact_memory":
        raise ValueError("period: 0 (unsampled) only with --trigger compact_memory")
    if ballast and trigger != "compact_memory":
        raise ValueError("ballast: only with --trigger compact_memory (thp-fault has its own)")
    nbytes = check_profile_size(parse_size(size))
    guard = probe.SettingsGuard()
    # probe_settings restores every setting the guard changed, the two perf ones included,
    # after `perf script` has read the kernel symbols
    with tempfile.TemporaryDirectory(prefix="migsim-prof-") as tmp, probe.probe_settings(guard):
        guard.set(PARANOID, "-1")
        guard.set(KPTR, "0")
        data = str(Path(tmp) / "perf.data")
        prefaulted = prefault_free_memory() if prefault else 0
        probe.trigger_compaction()  # settle
        keys = (*probe.VMSTAT_KEYS, *VMSTAT_EXTRA)
        with contextlib.ExitStack() as stack:
            region = stack.enter_context(probe.AnonRegion(nbytes))
            if layout == "shuffled":
                mask, pfns = fill_shuffled(region, seed)
            elif layout == "sequential":
                mask, pfns = fill_faulted(region)
            else:
                region.fill_order0()
                mask = probe.free_mask(pattern, ratio, region.nr_pages // PB, seed)
                pfns = region.pfns()
            if trigger == "thp-fault":
                stack.enter_context(thp_filled("MemFree", THP_SPARE))  # the ballast
                child = [sys.executable, "-c", THP_CHILD, str(THP_FAULT)]
            else:
                if ballast:
                    stack.enter_context(thp_filled("MemFree", BALLAST_SPARE))
                child = ["sh", "-c", "echo 1 > /proc/sys/vm/compact_memory"]
            avail_min = probe.mem_available_bytes()
            if avail_min < MEM_FLOOR:
                raise RuntimeError(
                    f"size: MemAvailable {avail_min >> 20}M is below {MEM_FLOOR >> 30} GiB "
                    "before the holes are freed; region freed, nothing measured"
                )
            region.madvise_pages(mask, probe.MADV_DONTNEED)
            os.sync()
            v0 = probe.read_vmstat(keys)
            times: dict = {}
            if period_ns == 0:  # unsampled: this thread writes, its CPU seconds are the cost
                probe.trigger_compaction(times=times)
            else:
                perf = ["perf", "record", "-q", "-e", "cpu-clock", "-c", str(period_ns), "-g"]
                subprocess.run([*perf, "-o", data, "--", *child], check=True)
            v1 = probe.read_vmstat(keys)
        script = ""
        if period_ns:
            script = subprocess.run(
                ["perf", "script", "-i", data, "-F", "comm,ip,sym"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
    dv = {k: v1[k] - v0[k] for k in v1}
    if trigger == "thp-fault":
        comm = Path(sys.executable).name[:15]
        by_group, by_self, kernel, total = parse_script(script, comm, DIRECT)
        scanned = max(dv["compact_migrate_scanned"], 1)
        share = 1.0 - dv["compact_daemon_migrate_scanned"] / scanned
        dv["pages_direct"] = round(dv["pgmigrate_success"] * share)
    else:
        by_group, by_self, kernel, total = parse_script(script)
        dv["pages_direct"] = dv["pgmigrate_success"]
    return {
        "groups": by_group,
        "self": by_self,
        "kernel": kernel,
        "total": total,
        "vmstat": dv,
        "prefaulted": prefaulted,
        "period_ns": period_ns,
        "mem_available_min": avail_min,
        "write": times,
        "pfn_next_frac": pfn_next_frac(pfns),
        "pfn_span": [int(pfns[pfns > 0].min()), int(pfns.max())] if (pfns > 0).any() else [],
    }


def rows(res: dict, top: int = 40) -> list[tuple[str, str, int, float]]:
    """(kind, name, samples, us per migrated page) rows: every group, then the top self symbols."""
    pages = max(1, res["vmstat"].get("pages_direct", 0))
    if not res.get("period_ns", PERIOD_NS):  # unsampled: the writer's CPU seconds
        cpu_s = res["write"]["cpu_s"]
        return [("total", "kernel", 0, cpu_s * 1e6 / pages)]
    us = res.get("period_ns", PERIOD_NS) / 1000.0
    out = [("total", "kernel", res["kernel"], res["kernel"] * us / pages)]
    out += [("group", g, n, n * us / pages) for g, n in res["groups"].most_common()]
    out += [("self", s, n, n * us / pages) for s, n in res["self"].most_common(top)]
    return out


# The size study's columns (scale_table): the groups of GROUPS summed into the parts that are
# paid per migrated folio inside migrate_pages() (mm/migrate.c, its rmap walks and TLB flush),
# by the migration scanner's isolation and putback (mm/compaction.c, mm/swap.c), by the free
# side (compaction_alloc and the free scanner, the buddy frees) and the rest of compact_zone
PARTS: dict[str, tuple[str, ...]] = {
    "migrate_pages": (
        "migrate_pages_other",
        "rmap_unmap",
        "rmap_remap",
        "move_mapping",
        "memcg_migrate",
        "tlb_flush",
    ),
    "isolate_migratepages": ("isolate_migratepages",),
    "putback_lru": ("putback_lru",),
    "free_side": (
        "compaction_alloc",
        "isolate_freepages",
        "free_one_page",
        "post_alloc",
        "split_page",
    ),
    "rest": ("compact_zone_other", "lru_drain_all", "other"),
}


def read_profile(path: str | Path) -> tuple[dict, dict[str, float]]:
    """A profile CSV written by main(): its ``# meta`` header (dict) and its group rows
    (group -> us per counted page)."""
    meta: dict | None = None
    groups: dict[str, float] = {}
    for line in Path(path).read_text().splitlines():
        if line.startswith("# meta "):
            meta = json.loads(line[len("# meta ") :])
        elif line.startswith(("group,", "total,")):
            kind, name, _, us = line.split(",")
            groups[name if kind == "group" else "total"] = float(us)
    if meta is None:
        raise ValueError(f"profile: {path} has no '# meta' line (written before --period)")
    return meta, groups


def scale_table(paths: list[str | Path]):
    """One row per profile run: region size, pages migrated, pfns scanned per migrated page and
    us of kernel CPU per migrated page, total, copy, non-copy and the PARTS of the non-copy."""
    import polars as pl

    from migsim.units import parse_size

    out = []
    for path in paths:
        meta, g = read_profile(path)
        vm = meta["vmstat"]
        pages = max(vm["pages_direct"], 1)
        row = {
            "file": Path(path).name,
            "size_gib": parse_size(meta["size"]) / 2**30,
            "layout": meta["layout"],
            "trigger": meta["trigger"],
            "pages": vm["pages_direct"],
            "pfn_next_frac": meta["pfn_next_frac"],
            "migrate_scanned_per_page": vm["compact_migrate_scanned"] / pages,
            "free_scanned_per_page": vm["compact_free_scanned"] / pages,
            "period_ns": meta["period_ns"],
            "kernel_us": g.get("total", 0.0),
            "copy_us": g.get("copy", 0.0),
            "noncopy_us": g.get("total", 0.0) - g.get("copy", 0.0),
        }
        for part, names in PARTS.items():
            row[f"{part}_us"] = sum(g.get(n, 0.0) for n in names)
        if not meta["period_ns"]:  # unsampled: the total only
            row.update({k: None for k in row if k.endswith("_us") and k != "kernel_us"})
        out.append(row)
    return pl.DataFrame(out).sort(["layout", "trigger", "size_gib", "file"])


def size_slope(table, column: str) -> tuple[float, float, float]:
    """Least-squares line of `column` (us per page) against log2 of the region size over the
    rows of a scale_table that have it: (value at 1 GiB, change per doubling, its standard
    error), all in us per page. A flat size curve has a slope within ~2 errors of 0."""
    from scipy.stats import linregress

    rows = table.drop_nulls(column)
    x = np.log2(rows["size_gib"].to_numpy())
    y = rows[column].to_numpy()
    if len(np.unique(x)) < 2 or len(y) < 3:
        raise ValueError(f"{column}: needs 3 runs and 2 sizes, got {len(y)} runs")
    fit = linregress(x, y)
    return float(fit.intercept), float(fit.slope), float(fit.stderr)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="2G")
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--pattern", default="even")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layout", default="thp-split", choices=LAYOUTS)
    ap.add_argument("--prefault", action="store_true")
    ap.add_argument("--ballast", action="store_true", help="THP ballast (compact_memory)")
    ap.add_argument("--trigger", default="compact_memory", choices=TRIGGERS)
    ap.add_argument(
        "--period",
        type=int,
        default=PERIOD_NS,
        help="perf sampling period, ns (0: no perf, the writer's CPU time only)",
    )
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--summary", nargs="+", default=None, help="profile CSVs: write their scale_table"
    )
    a = ap.parse_args(argv)
    if a.summary:
        table = scale_table(a.summary)
        if a.out:
            table.write_csv(a.out, float_precision=4)
        print(table)
        import polars as pl

        # sampled and unsampled runs apart: perf's sampling adds its own CPU to every part
        for period in sorted(set(table["period_ns"].to_list())):
            runs = table.filter(pl.col("period_ns") == period)
            cols = ["kernel_us"] if period == 0 else [f"{p}_us" for p in ("noncopy", *PARTS)]
            for col in cols:
                try:
                    at1, slope, se = size_slope(runs, col)
                except ValueError:
                    continue
                print(
                    f"period {period} ns, {col}: {at1:.3f} us at 1 GiB, "
                    f"{slope:+.3f} +- {se:.3f} us per doubling ({len(runs)} runs)"
                )
        return
    try:
        res = run(
            a.size, a.ratio, a.pattern, a.seed, a.layout, a.prefault, a.trigger, a.period, a.ballast
        )
    except ValueError as exc:  # bad input: one line, nothing measured
        sys.exit(f"migsim.host.profile: {exc}")
    vm = res["vmstat"]
    head = (
        f"# migsim.host.profile --size {a.size} --ratio {a.ratio} --pattern {a.pattern} "
        f"--seed {a.seed} --trigger {a.trigger} --layout {a.layout}{' --prefault' if a.prefault else ''} "
        f"(prefaulted {res['prefaulted'] >> 20} MiB); kernel {os.uname().release}; period {res['period_ns']} ns; "
        f"pgmigrate_success {vm.get('pgmigrate_success')} compact_migrate_scanned "
        f"{vm.get('compact_migrate_scanned')} compact_free_scanned {vm.get('compact_free_scanned')} "
        f"compact_isolated {vm.get('compact_isolated')} samples {res['total']}; pages counted "
        f"{vm.get('pages_direct')} (compact_daemon_migrate_scanned "
        f"{vm.get('compact_daemon_migrate_scanned')} thp_fault_alloc {vm.get('thp_fault_alloc')} "
        f"thp_fault_fallback {vm.get('thp_fault_fallback')} compact_stall "
        f"{vm.get('compact_stall')} compact_success {vm.get('compact_success')})"
    )
    meta = {
        "size": a.size,
        "layout": a.layout,
        "trigger": a.trigger,
        "ballast": a.ballast,
        "mem_available_min": res["mem_available_min"],
        "seed": a.seed,
        "period_ns": res["period_ns"],
        "pfn_next_frac": round(res["pfn_next_frac"], 4),
        "pfn_span": res["pfn_span"],
        "vmstat": vm,
        "write": {k: v for k, v in res["write"].items() if isinstance(v, (int, float))},
    }
    lines = [head, "# meta " + json.dumps(meta, sort_keys=True), "kind,name,samples,us_per_page"]
    lines += [f"{k},{n},{s},{u:.4f}" for k, n, s, u in rows(res)]
    text = "\n".join(lines) + "\n"
    if a.out:
        Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
