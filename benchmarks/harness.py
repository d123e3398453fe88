"""Whole-process benchmark harness: wall time and peak RSS of commands, median of N runs; and
the same for two commits side by side, each from a temporary git worktree (ratio head/base).

Each command runs as a child process; its wall time is measured around the process and its
peak RSS comes from os.wait4 (that child's own rusage). A reference command run in the same
invocation gives ratios that stay meaningful on a noisy or slower machine.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "results" / "benchmarks"
# Prelude of a child script that runs in either commit's tree: binds `study` (the compaction
# study: run_compaction, simulate), `platform` and `fragment_mod` from whichever module layout
# the commit has (migsim.studies / migsim.experiments; layer packages or the flat modules of
# the commits before "Lay the engine out in layer packages")
LAYOUT_PRELUDE = (
    "import importlib\n"
    "def _first(*names):\n"
    "    for name in names:\n"
    "        try:\n"
    "            return importlib.import_module(name)\n"
    "        except ModuleNotFoundError:\n"
    "            pass\n"
    "    raise ModuleNotFoundError(names)\n"
    "study = _first('migsim.studies.compaction', 'migsim.experiments.compaction')\n"
    "platform = _first('migsim.cost.platform', 'migsim.platform')\n"
    "fragment_mod = _first('migsim.kernel.fragment', 'migsim.fragment')\n"
)


@dataclass
class Measurement:
    name: str
    command: list[str]
    wall_s: list[float]
    peak_rss_mb: list[float]
    # CPU seconds (user + system) of each run, from wait4: on a shared machine they move far
    # less with the load than the wall time does (waiting for a CPU is not counted)
    cpu_s: list[float] = field(default_factory=list)

    @property
    def median_wall_s(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def median_cpu_s(self) -> float:
        return statistics.median(self.cpu_s) if self.cpu_s else float("nan")

    @property
    def median_rss_mb(self) -> float:
        return statistics.median(self.peak_rss_mb)


def measure(name: str, command: list[str], runs: int = 5) -> Measurement:
    """Run `command` `runs` times; wall seconds, CPU seconds and peak RSS (MiB) of each run."""
    walls, rss, cpu = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - t0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{name}: {' '.join(command)} exited {proc.returncode}")
        rss.append(usage.ru_maxrss / 1024.0)  # Linux reports KiB
        cpu.append(usage.ru_utime + usage.ru_stime)
    return Measurement(name, command, walls, rss, cpu)


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def report(title: str, reference: Measurement, runs: list[Measurement], out_name: str) -> dict:
    """Print a table (median wall, median CPU seconds beside it, ratio to the reference, peak
    RSS) with the load average, and write JSON results."""
    load = os.getloadavg()
    print(f"{title} (median of {len(reference.wall_s)} runs; load average {load[0]:.1f})")
    print(f"{'run':<34}{'wall s':>9}{'cpu s':>8}{'x ref':>8}{'peak RSS MiB':>14}")
    rows = []
    for m in [reference, *runs]:
        ratio = m.median_wall_s / reference.median_wall_s
        print(
            f"{m.name:<34}{m.median_wall_s:9.3f}{m.median_cpu_s:8.3f}{ratio:8.2f}"
            f"{m.median_rss_mb:14.1f}"
        )
        rows.append(
            {**asdict(m), "median_wall_s": m.median_wall_s, "median_cpu_s": m.median_cpu_s,
             "median_rss_mb": m.median_rss_mb, "ratio_to_reference": ratio}
        )  # fmt: skip
    doc = {"title": title, "reference": reference.name, "load_average": load, "runs": rows}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    tmp = OUT_DIR / f".{out_name}.tmp"
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, OUT_DIR / out_name)
    return doc


# ---------------------------------------------------------------------------------------------
# Two commits side by side (issue 17): each commit is checked out into a temporary `git
# worktree`, and every command runs alternately from the two trees in the same invocation, so
# that the load of a shared machine weighs on both alike; the ratio head/base is what to read.
# ---------------------------------------------------------------------------------------------


def build_extensions(tree: Path, rev: str) -> None:
    """Build a tree's C extensions in place as `pip install -e .` does (a commit with a
    setup.py: since issue 17 the compiled allocation loop, migsim.kernel._compact); says so,
    so that a comparison never times an unbuilt tree's Python fallback unknowingly."""
    if not (tree / "setup.py").exists():
        print(f"{rev[:10]}: no setup.py, nothing to build")
        return
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=tree,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    built = sorted(p.relative_to(tree).as_posix() for p in (tree / "src").rglob("*.so"))
    print(f"{rev[:10]}: python setup.py build_ext --inplace built {', '.join(built) or 'nothing'}")


@contextmanager
def worktrees(*revs: str) -> Iterator[list[Path]]:
    """Temporary detached `git worktree`s of `revs` (removed afterwards, also on error), each
    byte-compiled as an install is (pip writes the .pyc files): with PYTHONDONTWRITEBYTECODE
    set, as on the shared test machine, every run would otherwise compile every module it
    imports again (about 0.4 s of a `migsim reproduce` there), which no user pays."""
    tmp = Path(tempfile.mkdtemp(prefix="migsim-bench-"))
    paths: list[Path] = []
    try:
        for i, rev in enumerate(revs):
            path = tmp / f"tree{i}"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), rev],
                check=True,
            )
            paths.append(path)
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", str(path / "src")],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            build_extensions(path, rev)
        yield paths
    finally:
        for path in paths:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False
            )
        shutil.rmtree(tmp, ignore_errors=True)


def resolve(rev: str) -> str:
    """The commit `rev` names now (a branch that moves during a long comparison does not
    change what was measured, or what is printed for it)."""
    out = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def commit_of(rev: str) -> str:
    """Short hash and subject of `rev`."""
    out = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s", rev],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()[:90]


def run_in(tree: Path, command: list[str], prepare=None) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MiB) and CPU seconds (user + system, the child's processes
    included) of one run of `command` with `tree`'s engine (its src on PYTHONPATH, cwd the
    tree); `prepare(tree)` runs first, untimed."""
    if prepare is not None:
        prepare(tree)
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    # stderr into a file, not a pipe: a pipe nobody reads while the child runs blocks the
    # child once it holds 64 KB (snakemake's log does)
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            text = err.read().decode(errors="replace")
            raise SystemExit(f"{' '.join(command)} failed in {tree}:\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime


def side_by_side(
    name: str, command: list[str], trees: dict[str, Path], runs: int, prepare=None
) -> dict[str, Measurement]:
    """`runs` whole-process runs of `command` from each tree, alternating between the trees."""
    out = {label: Measurement(name, command, [], []) for label in trees}
    for _ in range(runs):
        for label, tree in trees.items():
            wall, rss, cpu = run_in(tree, command, prepare)
            out[label].wall_s.append(wall)
            out[label].peak_rss_mb.append(rss)
            out[label].cpu_s.append(cpu)
    return out


def ratio_report(
    title: str, revs: dict[str, str], rows: list[dict[str, Measurement]], out_name: str
) -> dict:
    """Print median wall time, CPU time and peak RSS of each command for base and head, and
    the ratios head / base; write them (with every run and the load average) as JSON."""
    base, head = revs
    runs = len(rows[0][base].wall_s) if rows else 0
    print(f"{title}: median of {runs} whole-process runs, alternating between the commits")
    for label, rev in revs.items():
        print(f"  {label}: {commit_of(rev)}")
    load = os.getloadavg()
    print(f"  machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f} (absolute times inflate with load; read the ratios)")  # fmt: skip
    print(f"{'command':<34}{'base s':>9}{'head s':>9}{'head/base':>11}"
          f"{'base cpu s':>12}{'head cpu s':>12}{'cpu h/b':>9}{'base MiB':>10}{'head MiB':>10}")  # fmt: skip
    doc_rows = []
    for row in rows:
        b, h = row[base], row[head]
        ratio = h.median_wall_s / b.median_wall_s
        cpu_ratio = h.median_cpu_s / b.median_cpu_s
        print(f"{b.name:<34}{b.median_wall_s:9.3f}{h.median_wall_s:9.3f}{ratio:11.2f}"
              f"{b.median_cpu_s:12.3f}{h.median_cpu_s:12.3f}{cpu_ratio:9.2f}"
              f"{b.median_rss_mb:10.0f}{h.median_rss_mb:10.0f}")  # fmt: skip
        doc_rows.append(
            {"name": b.name, "command": b.command, "ratio_head_to_base": ratio,
             "cpu_ratio_head_to_base": cpu_ratio,
             **{label: {**asdict(m), "median_wall_s": m.median_wall_s,
                        "median_cpu_s": m.median_cpu_s, "median_rss_mb": m.median_rss_mb}
                for label, m in row.items()}}
        )  # fmt: skip
    doc = {
        "title": title,
        "commits": {label: commit_of(rev) for label, rev in revs.items()},
        "cpus": os.cpu_count(),
        "load_average": load,
        "rows": doc_rows,
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    tmp = OUT_DIR / f".{out_name}.tmp"
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, OUT_DIR / out_name)
    return doc


def compare_args(ap) -> None:
    """--base / --head / --runs, the options of every side-by-side benchmark."""
    ap.add_argument("--base", default="HEAD~1", help="commit to compare against (HEAD~1)")
    ap.add_argument("--head", default="HEAD", help="commit measured (HEAD)")
    ap.add_argument("--runs", type=int, default=5, help="runs per commit (median), default 5")
