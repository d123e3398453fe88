"""Benchmark of the whole workflow: `snakemake --cores all` on the default configuration from
an empty results/ (in a copy of the workflow, so the repository's results/ stay as they are).

Reports the wall time of each run, the median and the peak RSS of the snakemake process tree's
largest process; writes results/benchmarks/pipeline.json and exits non-zero when the median
exceeds the budget (3 minutes on the 2-core machine).

    python benchmarks/bench_pipeline.py [--runs 3] [--cores all] [--budget-s 180]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "benchmarks" / "pipeline.json"


def one_run(workdir: Path, cores: str, extra: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MiB, largest child) of one snakemake run from an empty results/."""
    shutil.rmtree(workdir / "results", ignore_errors=True)
    shutil.rmtree(workdir / ".snakemake", ignore_errors=True)
    cmd = [sys.executable, "-m", "snakemake", "--cores", cores, *extra]
    # stderr into a file: snakemake's log fills a 64 KB pipe, and nobody reads it until the end
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            log.seek(0)
            err = log.read().decode(errors="replace")
            raise SystemExit(f"snakemake failed:\n{err[-4000:]}")
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return wall, max(usage.ru_maxrss / 1024.0, children)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs (median reported), default 3")
    ap.add_argument("--cores", default="all", help="snakemake --cores, default all")
    ap.add_argument("--budget-s", type=float, default=180.0, help="median budget, default 180 s")
    ap.add_argument(
        "--config", nargs="*", default=[], help="extra snakemake --config KEY=VALUE overrides"
    )
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs: must be >= 1")
    extra = ["--config", *args.config] if args.config else []
    with tempfile.TemporaryDirectory(prefix="migsim-bench-") as tmp:
        work = Path(tmp)
        shutil.copy2(ROOT / "Snakefile", work / "Snakefile")
        for d in ("workflow", "config"):
            shutil.copytree(ROOT / d, work / d, ignore=shutil.ignore_patterns("__pycache__"))
        walls, rss = [], []
        for i in range(args.runs):
            wall, peak = one_run(work, args.cores, extra)
            walls.append(wall)
            rss.append(peak)
            print(f"run {i + 1}/{args.runs}: {wall:.1f} s, peak RSS {peak:.0f} MiB", flush=True)
    median = statistics.median(walls)
    result = {
        "command": f"snakemake --cores {args.cores}" + (" " + " ".join(extra) if extra else ""),
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "wall_s": walls,
        "median_wall_s": median,
        "peak_rss_mib": max(rss),
        "budget_s": args.budget_s,
        "within_budget": median <= args.budget_s,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"snakemake --cores {args.cores} from an empty results/: median {median:.1f} s over "
        f"{args.runs} runs (budget {args.budget_s:.0f} s) -> {OUT.relative_to(ROOT)}"
    )
    return 0 if median <= args.budget_s else 1


if __name__ == "__main__":
    sys.exit(main())
