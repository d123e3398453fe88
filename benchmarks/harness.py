"""Whole-process benchmark harness: wall time and peak RSS of commands, median of N runs.

Each command runs as a child process; its wall time is measured around the process and its
peak RSS comes from os.wait4 (that child's own rusage). A reference command run in the same
invocation gives ratios that stay meaningful on a noisy or slower machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "results" / "benchmarks"


@dataclass
class Measurement:
    name: str
    command: list[str]
    wall_s: list[float]
    peak_rss_mb: list[float]

    @property
    def median_wall_s(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def median_rss_mb(self) -> float:
        return statistics.median(self.peak_rss_mb)


def measure(name: str, command: list[str], runs: int = 5) -> Measurement:
    """Run `command` `runs` times; wall seconds and peak RSS (MiB) of each run."""
    walls, rss = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - t0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{name}: {' '.join(command)} exited {proc.returncode}")
        rss.append(usage.ru_maxrss / 1024.0)  # Linux reports KiB
    return Measurement(name, command, walls, rss)


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def report(title: str, reference: Measurement, runs: list[Measurement], out_name: str) -> dict:
    """Print a table (median wall, ratio to the reference, peak RSS) and write JSON results."""
    print(f"{title} (median of {len(reference.wall_s)} runs)")
    print(f"{'run':<34}{'wall s':>9}{'x ref':>8}{'peak RSS MiB':>14}")
    rows = []
    for m in [reference, *runs]:
        ratio = m.median_wall_s / reference.median_wall_s
        print(f"{m.name:<34}{m.median_wall_s:9.3f}{ratio:8.2f}{m.median_rss_mb:14.1f}")
        rows.append(
            {**asdict(m), "median_wall_s": m.median_wall_s, "median_rss_mb": m.median_rss_mb,
             "ratio_to_reference": ratio}
        )  # fmt: skip
    doc = {"title": title, "reference": reference.name, "runs": rows}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    tmp = OUT_DIR / f".{out_name}.tmp"
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, OUT_DIR / out_name)
    return doc
