"""vmstat counters of simulated runs under the kernel's names (mm/vmstat.c vmstat_text)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from migsim.kernel.vmstat import move_pages_vmstat, percentiles
from migsim.studies.throughput import run_throughput
from migsim.units import parse_size

# names as mm/vmstat.c prints them in /proc/vmstat
KERNEL_NAMES = {
    "pgmigrate_success", "pgmigrate_fail", "compact_stall", "compact_fail", "compact_success",
    "compact_migrate_scanned", "compact_free_scanned", "compact_isolated",
    "thp_migration_success", "thp_migration_fail", "thp_migration_split",
}  # fmt: skip


def cli(*args: str) -> dict:
    return json.loads(subprocess.check_output([sys.executable, "-m", "migsim.cli", *args]))


@pytest.mark.parametrize(("size", "thp"), [("2M", 64), ("1M", 0), ("4K", 0)])
def test_move_pages_counts_pages_and_pmd_folios(platform, size, thp):
    res = run_throughput(
        platform, mode="dma", folio_size=parse_size(size), channels=2, total_bytes=128 << 20
    )
    v = res.vmstat()
    assert set(v) <= KERNEL_NAMES
    assert v["pgmigrate_success"] == (128 << 20) // 4096 == res.trials[0].nr_pages
    assert v["thp_migration_success"] == thp
    row = res.rows()[0]
    assert {k: row[k] for k in v} == v


def test_move_pages_vmstat_pmd_threshold():
    assert move_pages_vmstat(1024, 2, 512)["thp_migration_success"] == 2
    assert move_pages_vmstat(1024, 4, 256)["thp_migration_success"] == 0


def test_throughput_json_has_vmstat_and_first_folio_latency():
    out = cli("throughput", "--folio-size", "2M", "--total-bytes", "64M", "--trials", "3",
              "--json")  # fmt: skip
    assert out["vmstat"]["pgmigrate_success"] == out["pages_migrated"] == 16384
    assert out["vmstat"]["thp_migration_success"] == 32
    lat = out["first_folio_latency_us"]
    assert list(lat) == ["p5", "p25", "p50", "p75", "p90", "p95", "p99"]
    assert 0 < lat["p5"] <= lat["p50"] <= lat["p99"]
    assert lat["p50"] < out["phases_s"]["wall_s"] * 1e6  # the first folio comes before the end


def test_compaction_json_vmstat_and_latency_keys():
    out = cli("compaction", "--node-size", "64M", "--allocations", "8", "--json")
    assert set(out["vmstat"]) <= KERNEL_NAMES and len(out["vmstat"]) == 8
    assert out["vmstat"]["pgmigrate_success"] == out["pages_migrated"]
    lat = out["alloc_latency_us"]
    assert list(lat) == ["p5", "p25", "p50", "p75", "p90", "p95", "p99"]
    assert lat["p99"] <= out["wall_ms"] * 1e3  # each allocation lies within the run
    assert lat["p5"] <= lat["p50"] <= lat["p99"]


def test_percentiles_empty_and_ordered():
    assert percentiles([]) == dict.fromkeys(("p5", "p25", "p50", "p75", "p90", "p95", "p99"))
    p = percentiles(list(range(101)))
    assert (p["p5"], p["p50"], p["p99"]) == (5.0, 50.0, 99.0)
