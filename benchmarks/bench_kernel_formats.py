"""Cost of the kernel formats at full scale (250 GB node, 16384 order-9 allocations, baseline
mode): the vmstat counters and allocation-latency marks that every run now records, measured
side by side in the same invocation (issue 14: at most +10%, trace off).

Three variants of the same full-scale run, each in its own process, alternating, `--runs`
times each:

- ``off``: the same code with the latency marks and their costing stubbed out (Compactor._mark
  a no-op, no latency), i.e. the run as it was before the kernel formats;
- ``on``: the run as shipped (vmstat + allocation latency, trace off), row and summary built;
- ``trace``: the run traced, every event formatted and written as tracefs text.

Each child reports the time of the run itself (fragmentation excluded, simulation + costing
+ row) and the whole process wall time is measured around it. Prints medians and ratios to
``off``; writes results/benchmarks/kernel_formats.json.

    python benchmarks/bench_kernel_formats.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "benchmarks" / "kernel_formats.json"

CHILD = """
import json, sys, time
import numpy as np
variant, trace_path = sys.argv[1], sys.argv[2]
import migsim.kernel.compaction as c
import migsim.studies.compaction as e
if variant == "off":
    c.Compactor._mark = lambda self, *a: None
    e.alloc_latency_us = lambda log, cost: np.zeros(0)
from migsim.kernel.fragment import FragmentConfig, fragment
from migsim.cost.platform import DEFAULT_PLATFORM, load_platform
platform = load_platform(DEFAULT_PLATFORM)
zone = fragment(FragmentConfig(node_bytes=250 << 30), node_cpus=platform.compaction.node_cpus_count)
t0 = time.perf_counter()
sim = e.simulate(platform, state=zone, trace=variant == "trace")
res = sim.result(platform, mode="baseline")
row, summary = res.row(), res.summary()
t1 = time.perf_counter()
events = None
if variant == "trace":
    from migsim.studies.kernel_formats import write_trace
    events, _ = write_trace(res, trace_path, 10**8)
t2 = time.perf_counter()
assert res.alloc_success == 16384
accounted = None
if variant == "on":  # the added work itself: the marks, then costing them into latencies
    n_marks = len(res.log.marks)
    probe = c.Compactor(fragment(FragmentConfig(node_bytes=1 << 30), node_cpus=4))
    t3 = time.perf_counter()
    for _ in range(n_marks):
        probe._mark(0, 9)
    t4 = time.perf_counter()
    e.alloc_latency_us(res.log, res.cost)
    res.row(), res.summary()
    t5 = time.perf_counter()
    accounted = {"marks": n_marks, "marks_s": t4 - t3, "latency_row_s": t5 - t4}
print(json.dumps({"run_s": t1 - t0, "trace_write_s": t2 - t1, "events": events,
                  "p50_us": summary["alloc_latency_us"]["p50"], "accounted": accounted}))
"""


def one(variant: str, trace_path: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, variant, trace_path], env=env,
                         capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"{variant}: {out.stderr[-2000:]}")
    return {**json.loads(out.stdout), "process_s": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per variant (median), default 5")
    ap.add_argument("--no-trace", action="store_true", help="skip the traced variant")
    args = ap.parse_args()
    variants = ["off", "on"] + ([] if args.no_trace else ["trace"])
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            for v in variants:
                runs[v].append(one(v, str(Path(tmp) / "run.trace")))
    med = {v: {k: statistics.median(r[k] for r in rs) for k in ("run_s", "process_s")}
           for v, rs in runs.items()}  # fmt: skip
    load = os.getloadavg()
    print(f"full-scale compaction run, median of {args.runs} per variant, alternating; "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} (read the ratios)")  # fmt: skip
    print(f"{'variant':<8}{'run s':>9}{'x off':>8}{'process s':>11}{'x off':>8}")
    for v in variants:
        m = med[v]
        print(f"{v:<8}{m['run_s']:9.3f}{m['run_s'] / med['off']['run_s']:8.3f}"
              f"{m['process_s']:11.3f}{m['process_s'] / med['off']['process_s']:8.3f}")  # fmt: skip
    if "trace" in runs:
        t = runs["trace"][0]
        print(f"trace: {t['events']} events, written in "
              f"{statistics.median(r['trace_write_s'] for r in runs['trace']):.2f} s")  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_name(f".{OUT.name}.tmp")
    tmp.write_text(json.dumps({"runs": runs, "median": med, "load_average": load}, indent=1))
    os.replace(tmp, OUT)
    acc = [r["accounted"] for r in runs["on"]]
    added = statistics.median(a["marks_s"] + a["latency_row_s"] for a in acc)
    print(f"accounted: {acc[0]['marks']} marks in {statistics.median(a['marks_s'] for a in acc):.3f} s"
          f", latency + row + summary {statistics.median(a['latency_row_s'] for a in acc):.3f} s: "
          f"{100 * added / med['off']['run_s']:.1f}% of the run")  # fmt: skip
    ratio = med["on"]["run_s"] / med["off"]["run_s"]
    print(f"vmstat + latency cost: {100 * (ratio - 1):+.1f}% of the run (budget +10%)")
    return 0 if ratio <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
