"""Kernel CPU profile of a real ``compact_memory`` per migrated page (the source of the
compaction per-op priors, issue 12).

Run (root, under ``flock /tmp/host.lock``)::

    PYTHONPATH=src python -m migsim.host.profile --size 2G --ratio 0.5 \\
        --out config/host_compaction_profile.csv

It fragments an anonymous region exactly as the host twin does (``twin.twin_run``: THP faults,
split with MADV_COLD, MADV_NOHUGEPAGE, MADV_DONTNEED of the pattern's pages), then runs
``echo 1 > /proc/sys/vm/compact_memory`` in a child ``sh`` under ``perf record -e cpu-clock``
(software timer sampling, works in a VM without PMU counters) and splits the child's kernel
samples by function (self time) and by the call-graph ancestor they run under (mm/compaction.c
isolate_migratepages_block, isolate_freepages_block, compaction_alloc, mm/migrate.c
migrate_pages_batch children, ...). Every number is divided by the pgmigrate_success delta of
/proc/vmstat over the same write: microseconds of this host's kernel CPU per migrated page.

Settings changed and restored (also on error): THP enabled (only if 'never'),
compaction_proactiveness (0), kernel.perf_event_paranoid (-1), kernel.kptr_restrict (0).
The model simplifies nothing here: this is a measurement; the model's use of it is in
cost/platform.py (each prior names the row of the CSV it comes from).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import tempfile
from pathlib import Path

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


def parse_script(text: str) -> tuple[collections.Counter, collections.Counter, int, int]:
    """`perf script -F comm,ip,sym` output -> (samples by group, samples by self symbol,
    kernel samples of the ``sh`` writer, all samples of it)."""
    by_group: collections.Counter = collections.Counter()
    by_self: collections.Counter = collections.Counter()
    kernel = total = 0
    chain: list[str] = []
    comm = ""

    def flush() -> None:
        nonlocal kernel, total
        if not chain or comm != "sh":
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


def run(size: str, ratio: float, pattern: str, seed: int) -> dict:
    """One profiled compaction (root; hold /tmp/host.lock). Returns the counts and vmstat."""
    from migsim.host import probe
    from migsim.host.twin import PB
    from migsim.units import parse_size

    nbytes = probe.check_size_cap(parse_size(size))
    guard = probe.SettingsGuard()
    # probe_settings restores every setting the guard changed, the two perf ones included,
    # after `perf script` has read the kernel symbols
    with tempfile.TemporaryDirectory(prefix="migsim-prof-") as tmp, probe.probe_settings(guard):
        guard.set(PARANOID, "-1")
        guard.set(KPTR, "0")
        data = str(Path(tmp) / "perf.data")
        probe.trigger_compaction()  # settle
        with probe.AnonRegion(nbytes) as region:
            region.fill_order0()
            mask = probe.free_mask(pattern, ratio, region.nr_pages // PB, seed)
            region.madvise_pages(mask, probe.MADV_DONTNEED)
            os.sync()
            v0 = probe.read_vmstat()
            subprocess.run(
                [
                    "perf",
                    "record",
                    "-q",
                    "-e",
                    "cpu-clock",
                    "-c",
                    str(PERIOD_NS),
                    "-g",
                    "-o",
                    data,
                    "--",
                    "sh",
                    "-c",
                    "echo 1 > /proc/sys/vm/compact_memory",
                ],
                check=True,
            )
            v1 = probe.read_vmstat()
        script = subprocess.run(
            ["perf", "script", "-i", data, "-F", "comm,ip,sym"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    by_group, by_self, kernel, total = parse_script(script)
    dv = {k: v1[k] - v0[k] for k in v1}
    return {"groups": by_group, "self": by_self, "kernel": kernel, "total": total, "vmstat": dv}


def rows(res: dict, top: int = 40) -> list[tuple[str, str, int, float]]:
    """(kind, name, samples, us per migrated page) rows: every group, then the top self symbols."""
    pages = max(1, res["vmstat"].get("pgmigrate_success", 0))
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
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    res = run(a.size, a.ratio, a.pattern, a.seed)
    vm = res["vmstat"]
    head = (
        f"# migsim.host.profile --size {a.size} --ratio {a.ratio} --pattern {a.pattern} "
        f"--seed {a.seed}; kernel {os.uname().release}; period {PERIOD_NS} ns; "
        f"pgmigrate_success {vm.get('pgmigrate_success')} compact_migrate_scanned "
        f"{vm.get('compact_migrate_scanned')} compact_free_scanned {vm.get('compact_free_scanned')} "
        f"compact_isolated {vm.get('compact_isolated')} samples {res['total']}"
    )
    lines = [head, "kind,name,samples,us_per_page"]
    lines += [f"{k},{n},{s},{u:.4f}" for k, n, s, u in rows(res)]
    text = "\n".join(lines) + "\n"
    if a.out:
        Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
