"""Where the test suite's time goes on pytest-xdist's workers: one run of pytest (without the
Slurm tests, as `benchmarks/compare.py tests`) with the pytest_timeline plug-in; prints its
wall and CPU seconds (wait4: the run's processes that were reaped), each worker's groups in
the order it ran them (tests/conftest.py's --dist loadgroup groups: wall and CPU seconds), the
idle tail (the time between the first and the last worker's end) and the groups' wall seconds
in the form of tests/conftest.py's _GROUP_SECONDS (the queue's order; measure on an idle
machine: under load the subprocess-heavy groups stretch most).

    python benchmarks/suite_timeline.py [--min-s 1.0] [-- PYTEST_ARGS...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "pytest_timeline"]
DEFAULT_ARGS = ["--ignore=tests/test_slurm.py"]


def run(args: list[str], directory: Path) -> tuple[float, float, int, str]:
    """Wall and CPU seconds, the exit status and the output (stdout and stderr) of one pytest
    run from the repository root."""
    path = [str(ROOT / "src"), str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path)),
           "MIGSIM_TIMELINE_DIR": str(directory)}  # fmt: skip
    # the output into a file, not a pipe: a pipe nobody reads while pytest runs blocks it
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [*PYTEST, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read().decode(errors="replace")
    return wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status), text


def group_of(nodeid: str) -> str:
    """The xdist group of a test id (`path::test@group`), or its module in a serial run."""
    return nodeid.rsplit("@", 1)[1] if "@" in nodeid else nodeid.split("::", 1)[0]


def read(directory: Path) -> dict[str, list[dict]]:
    """Each worker's test records, in the order it ran them (the xdist controller's, which sees
    every test's report, only in a serial run)."""
    out = {}
    for f in sorted(directory.glob("*.jsonl")):
        tests = [r for r in map(json.loads, f.read_text().splitlines()) if r["event"] == "test"]
        if tests:
            out[f.stem] = tests
    if len(out) > 1:
        out.pop("main", None)
    return out


def segments(tests: list[dict]) -> list[list]:
    """Consecutive runs of one group: [group, start, end, cpu_s, tests]."""
    segs: list[list] = []
    for r in tests:
        g = group_of(r["id"])
        if segs and segs[-1][0] == g:
            segs[-1][2] = r["t1"]
            segs[-1][3] += r["cpu"]
            segs[-1][4] += 1
        else:
            segs.append([g, r["t0"], r["t1"], r["cpu"], 1])
    return segs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-s", type=float, default=1.0, help="list groups of at least this wall")
    ap.add_argument("pytest_args", nargs="*", help="pytest's arguments (after --)")
    args = ap.parse_args(argv)
    if args.min_s < 0:
        ap.error("--min-s: must be >= 0")
    with tempfile.TemporaryDirectory(prefix="migsim-timeline-") as d:
        wall, cpu, rc, text = run(args.pytest_args or DEFAULT_ARGS, Path(d))
        workers = read(Path(d))
    lines = text.rstrip().splitlines()
    for line in [*(x for x in lines if x.startswith(("FAILED", "ERROR"))), *lines[-1:]]:
        print(line)
    load = os.getloadavg()
    print(f"pytest: {wall:.1f} s wall, {cpu:.1f} CPU s, exit {rc}; {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")  # fmt: skip
    if not workers:
        return rc or 1
    t0 = min(r["t0"] for tests in workers.values() for r in tests)
    ends = {w: tests[-1]["t1"] - t0 for w, tests in workers.items()}
    group_wall: dict[str, float] = defaultdict(float)
    for w, tests in workers.items():
        cpu_w = sum(r["cpu"] for r in tests)
        print(f"{w}: tests {tests[0]['t0'] - t0:.1f}..{ends[w]:.1f} s, {len(tests)} tests, "
              f"{cpu_w:.1f} CPU s in the worker and its reaped children")  # fmt: skip
        small = [0, 0.0]
        for g, a, b, c, n in segments(tests):
            group_wall[g] += b - a
            if b - a < args.min_s:
                small[0] += 1
                small[1] += b - a
                continue
            print(f"  {a - t0:7.1f} {b - t0:7.1f}  {b - a:6.1f} s  {c:6.1f} CPU s  {n:4d}  {g}")
        print(f"  ... {small[0]} shorter groups, {small[1]:.1f} s together")
    print(f"idle tail: {max(ends.values()) - min(ends.values()):.1f} s (first worker done at "
          f"{min(ends.values()):.1f} s, last at {max(ends.values()):.1f} s)")  # fmt: skip
    print("_GROUP_SECONDS = {")
    for g, s in sorted(group_wall.items(), key=lambda kv: (-kv[1], kv[0])):
        if s >= args.min_s:
            print(f'    "{g}": {s:.1f},')
    print("}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
