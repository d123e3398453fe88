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
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

PARANOID = Path("/proc/sys/kernel/perf_event_paranoid")
KPTR = Path("/proc/sys/kernel/kptr_restrict")
PERIOD_NS = 20_000  # cpu-clock sampling period: one sample per 20 us of CPU

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


LAYOUTS = ("thp-split", "shuffled")
TRIGGERS = ("compact_memory", "thp-fault")
PREFAULT_SPARE = 3 << 30  # bytes of MemAvailable that --prefault leaves untouched
# thp-fault: MemFree left beside the ballast before the region's holes are freed, and what
# the faulting child asks for as THPs: the spare and 0.5 GiB more, which only compaction of
# the region (half free) can give
THP_SPARE = 5 << 29  # 2.5 GiB
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


def fill_shuffled(region, seed: int) -> np.ndarray:
    """Fault `region` in as order-0 pages in a random virtual order; returns the boolean mask of
    the pages to free: those of odd pfn (every other frame of the region's frames)."""
    from migsim.host.probe import MADV_NOHUGEPAGE

    region.madvise(MADV_NOHUGEPAGE)
    order = np.random.default_rng(seed).permutation(region.nr_pages)
    a = region.array()
    a[order * 4096] = 1  # one write per page, in the permuted order
    del a
    pfns = region.pfns()
    if (pfns <= 0).any():
        raise RuntimeError("layout shuffled: pagemap shows no pfns (needs CAP_SYS_ADMIN)")
    return (pfns % 2) == 1


def run(
    size: str,
    ratio: float,
    pattern: str,
    seed: int,
    layout: str = "thp-split",
    prefault: bool = False,
    trigger: str = "compact_memory",
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
    also runs)."""
    from migsim.host import probe
    from migsim.host.twin import PB
    from migsim.units import parse_size

    if layout not in LAYOUTS:
        raise ValueError(f"layout: must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    if layout == "shuffled" and (pattern != "even" or ratio != 0.5):
        raise ValueError("layout: shuffled frees the odd pfns: needs --pattern even --ratio 0.5")
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger: must be one of {', '.join(TRIGGERS)}; got {trigger!r}")
    nbytes = probe.check_size_cap(parse_size(size))
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
                mask = fill_shuffled(region, seed)
            else:
                region.fill_order0()
                mask = probe.free_mask(pattern, ratio, region.nr_pages // PB, seed)
            if trigger == "thp-fault":
                stack.enter_context(thp_filled("MemFree", THP_SPARE))  # the ballast
                child = [sys.executable, "-c", THP_CHILD, str(THP_FAULT)]
            else:
                child = ["sh", "-c", "echo 1 > /proc/sys/vm/compact_memory"]
            region.madvise_pages(mask, probe.MADV_DONTNEED)
            os.sync()
            v0 = probe.read_vmstat(keys)
            perf = ["perf", "record", "-q", "-e", "cpu-clock", "-c", str(PERIOD_NS), "-g"]
            subprocess.run([*perf, "-o", data, "--", *child], check=True)
            v1 = probe.read_vmstat(keys)
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
    }


def rows(res: dict, top: int = 40) -> list[tuple[str, str, int, float]]:
    """(kind, name, samples, us per migrated page) rows: every group, then the top self symbols."""
    pages = max(1, res["vmstat"].get("pages_direct", 0))
    us = PERIOD_NS / 1000.0
    out = [("total", "kernel", res["kernel"], res["kernel"] * us / pages)]
    out += [("group", g, n, n * us / pages) for g, n in res["groups"].most_common()]
    out += [("self", s, n, n * us / pages) for s, n in res["self"].most_common(top)]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="2G")
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--pattern", default="even")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layout", default="thp-split", choices=LAYOUTS)
    ap.add_argument("--prefault", action="store_true")
    ap.add_argument("--trigger", default="compact_memory", choices=TRIGGERS)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    res = run(a.size, a.ratio, a.pattern, a.seed, a.layout, a.prefault, a.trigger)
    vm = res["vmstat"]
    head = (
        f"# migsim.host.profile --size {a.size} --ratio {a.ratio} --pattern {a.pattern} "
        f"--seed {a.seed} --trigger {a.trigger} --layout {a.layout}{' --prefault' if a.prefault else ''} "
        f"(prefaulted {res['prefaulted'] >> 20} MiB); kernel {os.uname().release}; period {PERIOD_NS} ns; "
        f"pgmigrate_success {vm.get('pgmigrate_success')} compact_migrate_scanned "
        f"{vm.get('compact_migrate_scanned')} compact_free_scanned {vm.get('compact_free_scanned')} "
        f"compact_isolated {vm.get('compact_isolated')} samples {res['total']}; pages counted "
        f"{vm.get('pages_direct')} (compact_daemon_migrate_scanned "
        f"{vm.get('compact_daemon_migrate_scanned')} thp_fault_alloc {vm.get('thp_fault_alloc')} "
        f"thp_fault_fallback {vm.get('thp_fault_fallback')} compact_stall "
        f"{vm.get('compact_stall')} compact_success {vm.get('compact_success')})"
    )
    lines = [head, "kind,name,samples,us_per_page"]
    lines += [f"{k},{n},{s},{u:.4f}" for k, n, s, u in rows(res)]
    text = "\n".join(lines) + "\n"
    if a.out:
        Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
