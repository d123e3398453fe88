"""Peak memory of the full-scale compaction run as a library call (issue 17: at most 150 MB,
1.5x the state itself). Measured in a child process (its own VmHWM, in KiB), so the test
process's own allocations do not count.

What it holds at the peak (in result()'s costing), about 133 MiB: the frame states
(62.5 MiB), the content tags of the 4.7 M moved pages (about 10 MiB: a byte per frame of the
target region and a base per 64 frames, migsim.kernel.tags), the interpreter and numpy
(~37 MiB), the log (~5 MiB), the costing's per-call float64 arrays (~10 MiB at the peak of
result()) and the allocator's heap around them. The dense int32 tags it replaced (36 MiB) put it at ~160 MiB."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

LIBRARY_CALL = """
from migsim.cost.platform import DEFAULT_PLATFORM, load_platform
from migsim.kernel.fragment import FragmentConfig, fragment
from migsim.studies.compaction import simulate
platform = load_platform(DEFAULT_PLATFORM)
zone = fragment(FragmentConfig(node_bytes=250 << 30), node_cpus=64)
sim = simulate(platform, allocations=16384, state=zone)
sim.result(platform, mode="baseline")
assert sim.alloc_success == 16384
# VmHWM: the peak of this process's own memory. Not ru_maxrss: across the exec of a
# subprocess (vfork) it keeps the parent's peak, which is pytest's whole session here
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""
BUDGET_BYTES = 150 * 10**6


def test_full_scale_library_call_peak_rss_within_150_mb():
    out = subprocess.run(
        [sys.executable, "-c", LIBRARY_CALL], capture_output=True, text=True, check=True
    )
    peak = int(out.stdout.split()[-1]) * 1024
    assert peak <= BUDGET_BYTES, f"peak RSS {peak / 2**20:.1f} MiB"
