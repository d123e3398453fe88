"""Mutation testing of the engine core with mutmut: how many wrong engines the tests reject.

mutmut (3.x) rewrites every function of the modules in CORE into a trampoline that runs either
the original or one of its mutants (an operator, a constant, a comparison or an argument
changed), records which tests call which function, and runs, for each mutant, only the tests
that reached its function (stopping at the first failure). The test files it may use are TESTS:
the unit, property and small-case tests of the engine (and of the host twin, whose Compactor
subclass runs parts of the core the core itself does not); tests marked ``change_detector``
(committed file equals a re-fit) are left out, since they reject any change, right or wrong,
and so are the full-scale runs (marked ``slow``: seconds per mutant).

The run happens in a scratch copy of the repository (src, tests, config and the project
file with a [tool.mutmut] section added), never in the work tree. mutmut forks one process per
mutant from a fork server that has imported numpy, polars, pytest and the engine but run no
Polars query (Polars' thread pool does not survive a fork).

Equivalent mutants (no test can tell them apart from the original, e.g. a bound that the
surrounding code never reaches) are listed in mutation_equivalent.txt beside this file, one
line each: ``function | original line | mutated line | why`` (``*`` matches any line); they are
matched by their text, so a renumbering of mutants does not break the list.

A full run has about 6300 mutants, more than 2 cores test in 15 minutes: generating them
and mutmut's stats pass cost about 130 CPU seconds, each mutant about 3 (its fork runs only
the tests that reached its function in the stats pass, fastest first, and a killed mutant
stops at its first failing test), so all of them take about 19,000 CPU seconds (2.6 hours on
2 idle cores) and ``--sample N`` (default 400) about 130 + 3N (measured: 1292 CPU seconds
for 396 mutants, about 11 minutes on 2 idle cores; measured in CPU seconds on a shared
machine, so an estimate of the idle time). The sample is deterministic, N mutants spread
evenly over every module and function (every k-th mutant in name order), and the score is
then an estimate (its 95% Wilson interval is printed); ``--sample 0`` tests all of them.
The printed ``cpu_seconds`` (every process of the run) divided by the cores is the run's
time on an idle machine.

``--audit`` instead applies each hand-made mutation of mutation_audit.txt (the mutations an
audit of the suite found surviving: ``module | original text | mutated text | tests``) to a
scratch copy and checks that the named tests fail on it and pass without it; a mutation whose
original text is no longer in the module is reported as stale.

    python benchmarks/mutation.py [--json] [--sample 400] [--max-children 2] [--keep DIR]
                                  [--only copiers] [--audit]

Prints ``{"killed", "survived", "timeout", "equivalent", "score"}`` (score = (killed + timeout)
/ (killed + timeout + survived), in %; survivors include mutants no test reaches), the time and
the load average, and each surviving mutant's diff. Exit status 0 unless mutmut itself failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT_FILE = Path(__file__).with_name("mutation_equivalent.txt")
AUDIT_FILE = Path(__file__).with_name("mutation_audit.txt")

# The engine core: the mechanisms every reported number comes from.
CORE = (
    "cost/copiers.py",
    "kernel/migrate.py",
    "kernel/compaction.py",
    "kernel/zone.py",
    "cost/timeline.py",
    "kernel/fragment.py",
    "cost/platform.py",
    "studies/compaction.py",
)
# The tests that may kill a mutant; per mutant mutmut runs the subset that called its function.
TESTS = (
    "tests/test_copiers.py",
    "tests/test_migrate.py",
    "tests/test_throughput.py",
    "tests/test_compaction.py",
    "tests/test_compaction_properties.py",
    "tests/test_compaction_reproduce.py",
    "tests/test_compaction_cli.py",
    "tests/test_zone.py",
    "tests/test_timeline.py",
    "tests/test_fragment.py",
    "tests/test_platform.py",
    "tests/test_engine_hand_cases.py",
    "tests/test_scanner_hand_cases.py",
    # the host twin subclasses the Compactor (its free scanner's stride and whole-buddy
    # isolation reach code of the core that the core's own scanner never runs)
    "tests/test_twin.py",
)
# Tests of the calibration's fitter (calibrate/throughput.py, not in CORE): each re-fits the
# 42-cell table (tens of seconds), and the strict-xfail fit fails on any mutant that makes it
# pass. The mechanisms they reach are tested by the unit and hand cases above.
DESELECT = (
    "tests/test_throughput.py::test_fit_recovers_every_free_parameter_of_a_synthetic_table",
    "tests/test_throughput.py::test_standard_errors_cover_the_truth_under_noise",
    "tests/test_throughput.py::test_cross_validation_held_out_channel_counts",
    "tests/test_throughput.py::test_v4_table_fits_without_a_page_stall_term",
)
# Imported by the fork server before it forks the per-mutant processes (imports only).
PRELOAD = (
    "numpy",
    "scipy.optimize",
    "scipy.stats",
    "polars",
    "pyarrow",
    "yaml",
    "jsonschema",
    "hypothesis",
    "pytest",
    *(f"migsim.{m[:-3].replace('/', '.')}" for m in CORE),
    "migsim.calibrate.throughput",
    "migsim.calibrate.compaction",
    "migsim.studies.throughput",
    "migsim.cli",
)
# `mutmut run`, with three changes to its fork-server runner: each mutant's tests run fastest
# first (its fork runner sorts them so, its fork server runs them in set order), so a killed
# mutant stops after its quickest failing test; the clean-test pass is skipped: it runs the
# very tests the stats pass has just run on the same unmutated code (mutmut stops when the
# stats pass fails); and the wall-clock limit of a mutant is WALL_FACTOR times mutmut's, so
# that on a loaded machine a slow but finite run is not called a timeout (a kill): the CPU
# limit (RLIMIT_CPU, (tests' time + timeout_constant) x timeout_multiplier x 2 CPU seconds,
# which no load inflates) still ends an endless loop.
WALL_FACTOR = 8
LAUNCH = f"""
import sys
WALL_FACTOR = {WALL_FACTOR}
from mutmut.state import state
from mutmut.workers import isolation

_submit = isolation.ForkServerRunner.submit


def submit(self, mutant_name, tests, cpu_time_limit, estimated_time):
    tests = sorted(tests, key=lambda t: (state().duration_by_test.get(t, 0.0), t))
    return _submit(self, mutant_name, tests, cpu_time_limit, estimated_time)


_register_timeout = isolation.register_timeout


def register_timeout(pid, timeout_s):
    _register_timeout(pid, timeout_s * WALL_FACTOR)


isolation.ForkServerRunner.submit = submit
isolation.ForkServerRunner.run_clean_tests = lambda self, tests: 0
isolation.register_timeout = register_timeout
from mutmut.__main__ import cli

sys.argv = ["mutmut", *sys.argv[1:]]
cli()
"""
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "survived", 33: "survived"}
TIMEOUT_CODES = {36, -24, 24, 152, 255}


def mutmut_config(only: list[str], max_children: int) -> str:
    """The [tool.mutmut] section for the scratch copy's project file."""
    lines = [
        "",
        "[tool.mutmut]",
        'source_paths = ["src/migsim"]',
        f"only_mutate = {json.dumps([f'src/migsim/{m}' for m in only])}",
        f"pytest_add_cli_args_test_selection = {json.dumps(list(TESTS))}",
        # -p no:cacheprovider: no .pytest_cache in the copy
        # full-scale runs (marked slow) take seconds per mutant: the unit, property and
        # small-case tests must kill what they would
        "pytest_add_cli_args = "
        + json.dumps(
            ["-p", "no:cacheprovider", "-m", "not change_detector and not slow"]
            + [arg for test in DESELECT for arg in ("--deselect", test)]
        ),
        'also_copy = ["config"]',
        'process_isolation = "forkserver"',
        'forkserver_warmup = "import"',
        'preload_modules_file = "preload.txt"',
        # a mutant's CPU limit is (its tests' time in the stats run + 3 s) x 4 x 2 CPU seconds
        # (LAUNCH: the wall limit is WALL_FACTOR x half that)
        "timeout_multiplier = 4.0",
        "timeout_constant = 3.0",
        "use_git_change_detection = false",
        "",
    ]
    return "\n".join(lines)


def unmangle(path: Path) -> None:
    """Rename the module's name-mangled methods (``def __name``, named as the kernel names
    them, e.g. ``__alloc_pages_direct_compact``) to ``_name`` in the scratch copy: mutmut 3.8.1
    generates their mutants but installs no trampoline for them, so none of those mutants could
    ever run and all would count as survivors. Every use is ``self.__name`` inside the class
    (no other module spells the mangled ``_Class__name``), so behaviour is unchanged."""
    text = path.read_text()
    for name in sorted(set(re.findall(r"def (__[a-z]\w*[a-z0-9])\(", text))):
        text = re.sub(rf"\b{name}\b", name[1:], text)
    path.write_text(text)


def prepare(work: Path, only: list[str], max_children: int) -> None:
    """A scratch copy of what the tests need, with the mutmut configuration."""
    for name in ("src", "tests", "config"):
        shutil.copytree(
            ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    for module in only:
        unmangle(work / "src" / "migsim" / module)
    project = (ROOT / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(project + mutmut_config(only, max_children))
    (work / "preload.txt").write_text("\n".join(PRELOAD) + "\n")


def generate(work: Path, max_children: int) -> list[str]:
    """Create the mutants in `work` (mutmut's own generator) and return all their names."""
    code = (
        "import sys; sys.argv = ['mutmut']\n"
        "from mutmut.__main__ import copy_src_dir, copy_also_copy_files, create_mutants\n"
        "from mutmut.utils.file_utils import setup_source_paths\n"
        "import os; os.makedirs('mutants', exist_ok=True)\n"
        f"copy_src_dir(); copy_also_copy_files(); setup_source_paths(); create_mutants({max_children})\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=work, check=True, capture_output=True)
    names = []
    for meta in sorted((work / "mutants" / "src").rglob("*.py.meta")):
        names += json.loads(meta.read_text())["exit_code_by_key"]
    return sorted(names)


def sample(names: list[str], n: int) -> list[str]:
    """Every k-th of the sorted names (k = ceil(len / n)): spread over every module and
    function in proportion to their mutants; all of them when n is 0 or too large."""
    if n <= 0 or n >= len(names):
        return names
    k = -(-len(names) // n)
    return names[k // 2 :: k]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n, in %."""
    if n == 0:
        return 0.0, 100.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return round(100 * (centre - half), 1), round(100 * (centre + half), 1)


def read_rows(path: Path, fields: str) -> list[list[str]]:
    """The rows of a ' | '-separated list file (comments and blank lines skipped), each with
    the 4 fields that `fields` names (for the error message)."""
    out = []
    for raw in path.read_text().splitlines() if path.exists() else []:
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in raw.split(" | ")]
        if len(parts) != 4:
            raise SystemExit(f"{path.name}: expected '{fields}': {raw}")
        out.append(parts)
    return out


def read_equivalents(path: Path = EQUIVALENT_FILE) -> list[list[str]]:
    """[function, original line, mutated line, reason] from the equivalent-mutant list."""
    return read_rows(path, "function | original | mutated | why")


def function_of(mutant: str) -> str:
    """'migsim.kernel.zone.xǁZoneǁcheck__mutmut_3' -> 'zone.Zone.check'."""
    name = mutant.rsplit("__mutmut_", 1)[0]
    module, _, func = name.rpartition(".")
    func = func.removeprefix("x_").removeprefix("xǁ").replace("ǁ", ".")
    # the lists name functions by module without its layer package (kernel., cost.)
    module = module.removeprefix("migsim.").removeprefix("kernel.").removeprefix("cost.")
    return f"{module}.{func}"


def changed_lines(diff: str) -> tuple[str, str]:
    """The first removed and the first added line of a mutant's diff, stripped."""
    minus = [
        ln[1:].strip()
        for ln in diff.splitlines()
        if ln.startswith("-") and not ln.startswith("---")
    ]
    plus = [
        ln[1:].strip()
        for ln in diff.splitlines()
        if ln.startswith("+") and not ln.startswith("+++")
    ]
    return (minus[0] if minus else ""), (plus[0] if plus else "")


def collect(work: Path) -> dict:
    """Verdicts of every mutant of the run in `work`, with the diffs of the survivors."""
    os.chdir(work)
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    verdicts: dict[str, str] = {}
    paths: dict[str, Path] = {}
    for meta in sorted((work / "mutants" / "src").rglob("*.py.meta")):
        doc = json.loads(meta.read_text())
        src = meta.with_suffix("")  # the mutated module
        for name, code in doc["exit_code_by_key"].items():
            if code is None:
                verdicts[name] = "not checked"
            elif code in TIMEOUT_CODES:
                verdicts[name] = "timeout"
            else:
                verdicts[name] = STATUS.get(code, "suspicious")
            paths[name] = src
    equivalents = read_equivalents()
    survivors, equivalent = [], []
    for name in sorted(n for n, v in verdicts.items() if v == "survived"):
        diff = get_diff_for_mutant(name, path=paths[name])
        func, (old, new) = function_of(name), changed_lines(diff)
        why = next(
            (r for f, o, m, r in equivalents if f == func and o in ("*", old) and m in ("*", new)),
            None,
        )
        if why is None:
            survivors.append(
                {"mutant": name, "function": func, "original": old, "mutated": new, "diff": diff}
            )
        else:
            verdicts[name] = "equivalent"
            equivalent.append({"mutant": name, "function": func, "mutated": new, "why": why})
    counts = {
        k: sum(v == k for v in verdicts.values())
        for k in ("killed", "survived", "timeout", "equivalent", "suspicious", "not checked")
    }
    detected = counts["killed"] + counts["timeout"]
    judged = detected + counts["survived"]
    counts["score"] = round(100.0 * detected / judged, 2) if judged else 0.0
    counts["score_interval"] = wilson(detected, judged)
    return {
        "counts": counts,
        "survivors": survivors,
        "equivalents": equivalent,
        "total": len(verdicts),
    }


def read_audit(path: Path = AUDIT_FILE) -> list[tuple[str, str, str, list[str]]]:
    """(module, original text, mutated text, killing tests) of the audit's mutations; ``\\n``
    in a text stands for a line break (with the next line's indentation), so that a line whose
    text occurs twice is named by a neighbour."""
    rows = read_rows(path, "module | original | mutated | tests")
    return [
        (m, o.replace("\\n", "\n"), n.replace("\\n", "\n"), tests.split())
        for m, o, n, tests in rows
    ]


def audit(work: Path, env: dict[str, str]) -> dict:
    """Apply each audit mutation to a scratch copy of src and run its killing tests."""
    for name in ("src", "config"):  # the package finds its platform files beside src
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    env = env | {"PYTHONPATH": str(work / "src")}
    rows = []
    for module, old, new, tests in read_audit():
        path = work / "src" / "migsim" / module
        text = path.read_text()
        row = {"module": module, "original": old, "mutated": new, "tests": tests}
        if text.count(old) != 1:
            row["verdict"] = f"stale: the original occurs {text.count(old)} times in {module}"
            rows.append(row)
            continue
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        clean = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        path.write_text(text.replace(old, new))
        try:
            mutated = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        finally:
            path.write_text(text)
        if clean.returncode != 0:
            row["verdict"] = "broken: the tests fail without the mutation"
        else:
            row["verdict"] = "killed" if mutated.returncode == 1 else "survived"
        rows.append(row)
    return {"audit": rows, "killed": sum(r["verdict"] == "killed" for r in rows), "of": len(rows)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--sample", type=int, default=400, help="mutants to test (0: all)")
    ap.add_argument("--max-children", type=int, default=2, help="parallel mutant processes")
    ap.add_argument("--keep", type=Path, help="run in DIR and keep it (default: a temp dir)")
    ap.add_argument(
        "--only", action="append", choices=[m[:-3] for m in CORE], help="mutate only this module"
    )
    ap.add_argument("--audit", action="store_true", help="check the audit's hand-made mutants")
    ap.add_argument(
        "--collect", type=Path, metavar="DIR", help="report the verdicts of a kept (--keep) run"
    )
    args = ap.parse_args(argv)
    if args.collect:
        res = collect(args.collect.resolve())
        print(json.dumps(res["counts"] | {k: v for k, v in res.items() if k != "counts"}, indent=1))
        return 0
    only = [m for m in CORE if args.only is None or m[:-3] in args.only]
    if args.max_children < 1:
        ap.error(f"--max-children: must be >= 1, got {args.max_children}")
    if args.sample < 0:
        ap.error(f"--sample: must be >= 0, got {args.sample}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="migsim-mutation-"))
    if args.keep and (work / "mutants").exists():
        ap.error(f"--keep: {work} already holds a run; give a new directory")
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # the quick hypothesis profile, derandomized (tests/conftest.py): the same examples for
    # every mutant
    env |= {"OPENBLAS_NUM_THREADS": "1", "HYPOTHESIS_PROFILE": "ci", "HYPOTHESIS_DERANDOMIZE": "1"}
    load0 = os.getloadavg()
    t0 = time.monotonic()
    if args.audit:
        res = audit(work, env)
        if args.json:
            print(json.dumps(res, indent=1))
        else:
            for r in res["audit"]:
                print(f"{r['verdict']:9} {r['module']}: {r['original']} -> {r['mutated']}")
                print(f"          by {' '.join(r['tests'])}")
            print(f"{res['killed']} of {res['of']} audit mutants killed")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        return 0 if res["killed"] == res["of"] else 1
    prepare(work, only, args.max_children)
    names = generate(work, args.max_children)
    chosen = sample(names, args.sample)
    with open(work / "mutmut.log", "w") as log:
        cmd = [sys.executable, "-c", LAUNCH, "run", "--max-children", str(args.max_children)]
        proc = subprocess.run(
            cmd + (chosen if len(chosen) < len(names) else []),
            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    seconds = time.monotonic() - t0
    # CPU time of every process of the run (mutmut, its fork server, the mutants), all waited
    # for: the load-independent cost; on an idle machine with --max-children cores the run
    # cannot take less than this divided by them
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        tail = (work / "mutmut.log").read_text()[-3000:]
        print(f"mutmut failed (exit {proc.returncode}); log {work / 'mutmut.log'}:\n{tail}")
        return 1
    res = collect(work)
    res |= {
        "modules": only,
        "generated": len(names),
        "tested": len(chosen),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "mutants_per_second": round(len(chosen) / seconds, 3),
        "max_children": args.max_children,
        "loadavg_start": [round(x, 2) for x in load0],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "workdir": str(work),
    }
    c = res["counts"]
    if args.json:
        print(json.dumps(c | {k: v for k, v in res.items() if k != "counts"}, indent=1))
    else:
        for s in res["survivors"]:
            print(f"SURVIVED {s['mutant']}\n{s['diff']}\n")
        for e in res["equivalents"]:
            print(f"equivalent {e['function']}: {e['mutated']}  -- {e['why']}")
        print(
            f"\n{len(chosen)} of {len(names)} mutants of {', '.join(only)} in {seconds:.0f} s on "
            f"{args.max_children} children (load {load0[0]:.1f} -> {os.getloadavg()[0]:.1f}), "
            f"score 95% interval {c['score_interval']}: "
            + json.dumps(
                {k: c[k] for k in ("killed", "survived", "timeout", "equivalent", "score")}
            )
        )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
