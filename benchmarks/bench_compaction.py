"""Benchmark of the full-scale compaction run (250 GB node, 16384 order-9 allocations).

1. Headline: one whole `run_compaction(mode="baseline")` process, median of 5 runs, wall time
   and peak RSS (os.wait4 of each child, and RUSAGE_CHILDREN), on each engine of the
   allocation loop (MIGSIM_ENGINE=c, the compiled loop, and python, the reference), the two
   alternating; budget (issue 17) <= 1.0 s and <= 150 MiB for the default engine (c).
2. Scaling: node size and allocations both x0.25, x0.5, x1, x2, plus a big node with few
   allocations; the allocation loop's time per migrated page stays flat, so the cost grows
   with the pages migrated, not with node size x allocations (which grows 64x across the
   diagonal while the pages grow 8x).

Prints a table and writes results/benchmarks/compaction.json (atomically). Exits non-zero
when the headline run is over budget.

    python benchmarks/bench_compaction.py [--runs 5] [--budget-s 1] [--budget-mb 150]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "benchmarks" / "compaction.json"
GB = 1 << 30

HEADLINE = (
    "from migsim.studies.compaction import run_compaction\n"
    "from migsim.cost.platform import DEFAULT_PLATFORM, load_platform\n"
    "r = run_compaction(load_platform(DEFAULT_PLATFORM), mode='baseline')\n"
    "assert r.alloc_success == 16384\n"
)


def child(node_gb: float, allocations: int) -> None:
    """One scaling point, in its own process: print a JSON line with the phase times."""
    t0 = time.perf_counter()
    from migsim.cost.platform import DEFAULT_PLATFORM, load_platform
    from migsim.studies.compaction import simulate

    platform = load_platform(DEFAULT_PLATFORM)
    t1 = time.perf_counter()
    from migsim.kernel.fragment import FragmentConfig, fragment

    zone = fragment(FragmentConfig(node_bytes=int(node_gb * GB)), node_cpus=64)
    t2 = time.perf_counter()
    sim = simulate(platform, allocations=allocations, state=zone)
    t3 = time.perf_counter()
    sim.result(platform, mode="baseline")
    t4 = time.perf_counter()
    print(
        json.dumps(
            {
                "node_gb": node_gb,
                "allocations": allocations,
                "pages_migrated": sim.vmstat["pgmigrate_success"],
                "alloc_success": sim.alloc_success,
                "import_s": t1 - t0,
                "fragment_s": t2 - t1,
                "allocate_s": t3 - t2,
                "cost_s": t4 - t3,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def run(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err.decode()[-3000:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, rss, out.decode()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="headline runs (median), default 5")
    ap.add_argument("--budget-s", type=float, default=1.0)
    ap.add_argument("--budget-mb", type=float, default=150.0)
    ap.add_argument("--child", nargs=2, metavar=("NODE_GB", "ALLOCATIONS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(float(args.child[0]), int(args.child[1]))
        return 0
    if args.runs < 1:
        ap.error("--runs: must be >= 1")

    # 1. the headline run, whole process, on each engine (alternating: the same load)
    engines = ("c", "python")
    runs = {e: {"wall": [], "rss": [], "cpu": []} for e in engines}
    for _ in range(args.runs):
        for engine in engines:
            env = {**os.environ, "MIGSIM_ENGINE": engine}
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-c", HEADLINE], cwd=ROOT, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            runs[engine]["wall"].append(time.perf_counter() - t0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"headline run failed (MIGSIM_ENGINE={engine})")
            runs[engine]["rss"].append(usage.ru_maxrss / 1024)
            # CPU time: less sensitive to load
            runs[engine]["cpu"].append(usage.ru_utime + usage.ru_stime)
    children_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    med = {e: {k: statistics.median(v) for k, v in r.items()} for e, r in runs.items()}
    walls, rss, cpus = runs["c"]["wall"], runs["c"]["rss"], runs["c"]["cpu"]
    med_wall, med_rss = med["c"]["wall"], med["c"]["rss"]
    print(f"full-scale compaction run (250G node, 16384 order-9 allocations), {args.runs} runs "
          f"per engine; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    for e in engines:
        print(f"  MIGSIM_ENGINE={e:<6} wall s median {med[e]['wall']:.3f} (runs: "
              f"{', '.join(f'{w:.2f}' for w in runs[e]['wall'])}), CPU s median "
              f"{med[e]['cpu']:.3f}, peak RSS MiB median {med[e]['rss']:.0f}")  # fmt: skip
    print(f"  c/python: wall {med['c']['wall'] / med['python']['wall']:.2f}x, CPU "
          f"{med['c']['cpu'] / med['python']['cpu']:.2f}x; max RSS over runs {children_rss:.0f}")  # fmt: skip

    # 2. scaling
    points = [(62.5, 4096), (125, 8192), (250, 16384), (500, 32768), (500, 4096)]
    rows = []
    print(f"{'node':>7}{'allocs':>8}{'pages':>10}{'process s':>11}{'fragment s':>12}"
          f"{'allocate s':>12}{'us/page':>9}{'RSS MiB':>9}")  # fmt: skip
    for node_gb, allocs in points:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(node_gb), str(allocs)]
        wall, _, out = run(cmd)
        r = json.loads(out.strip().splitlines()[-1])
        r["process_s"] = wall
        r["us_per_page"] = 1e6 * r["allocate_s"] / max(r["pages_migrated"], 1)
        rows.append(r)
        print(f"{node_gb:>6g}G{allocs:>8}{r['pages_migrated']:>10}{wall:>11.2f}"
              f"{r['fragment_s']:>12.2f}{r['allocate_s']:>12.2f}{r['us_per_page']:>9.3f}"
              f"{r['peak_rss_mb']:>9.0f}")  # fmt: skip
    diag = [r for r in rows if r["allocations"] * 250 == r["node_gb"] * 16384]
    spread = max(r["us_per_page"] for r in diag) / min(r["us_per_page"] for r in diag)
    work = (diag[-1]["node_gb"] * diag[-1]["allocations"]) / (
        diag[0]["node_gb"] * diag[0]["allocations"]
    )
    pages = diag[-1]["pages_migrated"] / diag[0]["pages_migrated"]
    print(f"diagonal: node x allocations grows {work:.0f}x, pages {pages:.0f}x, allocation time "
          f"{diag[-1]['allocate_s'] / diag[0]['allocate_s']:.1f}x; us/page spread {spread:.2f}x")  # fmt: skip

    ok = med_wall < args.budget_s and max(rss) < args.budget_mb
    doc = {
        "headline": {
            "wall_s": walls,
            "median_wall_s": med_wall,
            "peak_rss_mb": rss,
            "median_rss_mb": med_rss,
            "cpu_s": cpus,
            "median_cpu_s": statistics.median(cpus),
            "load_average_1min": os.getloadavg()[0],
            "engine": "c",
            "python_engine": {
                "wall_s": runs["python"]["wall"],
                "cpu_s": runs["python"]["cpu"],
                "peak_rss_mb": runs["python"]["rss"],
            },
            "rusage_children_max_rss_mb": children_rss,
            "budget_s": args.budget_s,
            "budget_mb": args.budget_mb,
            "within_budget": ok,
        },
        "scaling": rows,
        "scaling_summary": {
            "node_x_allocations_growth": work,
            "pages_growth": pages,
            "us_per_page_spread": spread,
        },  # fmt: skip
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_name(f".{OUT.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, OUT)
    print(f"wrote {OUT.relative_to(ROOT)}; {'within' if ok else 'OVER'} budget")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
