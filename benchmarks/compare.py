"""Two commits side by side (issue 17's "Done when" numbers): each is checked out into a
temporary git worktree and every command runs alternately from the two trees in the same
invocation (medians of --runs whole-process runs; CPU seconds and peak RSS from wait4); prints
wall and CPU seconds and their ratios head/base, writes results/benchmarks/compare-<what>.json.
Either commit may predate the module moves (benchmarks/harness.py LAYOUT_PRELUDE).

    python benchmarks/compare.py compaction [--base HEAD~1] [--head HEAD] [--runs 5]
    python benchmarks/compare.py startup    # migsim compaction --help, reproduce throughput
    python benchmarks/compare.py pipeline   # snakemake --cores 2 from an empty results/
    python benchmarks/compare.py tests      # pytest without the Slurm tests (default 1 run)
    python benchmarks/compare.py all

On a shared machine absolute times inflate with the load (printed); the ratios, measured
under the same load, are what to compare with the targets (the CPU ratio moves least).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    LAYOUT_PRELUDE,
    compare_args,
    ratio_report,
    resolve,
    side_by_side,
    worktrees,
)

PY = sys.executable
FULL_SCALE = LAYOUT_PRELUDE + (
    "r = study.run_compaction(platform.load_platform(platform.DEFAULT_PLATFORM), mode='baseline')\n"
    "assert r.alloc_success == 16384\n"
)
COMMANDS = {
    "compaction": [("full-scale compaction run", [PY, "-c", FULL_SCALE])],
    "startup": [
        ("migsim compaction --help", [PY, "-m", "migsim.cli", "compaction", "--help"]),
        ("migsim reproduce throughput", [PY, "-m", "migsim.cli", "reproduce", "throughput"]),
    ],
    "pipeline": [("snakemake --cores 2 (empty results/)", [PY, "-m", "snakemake", "--cores", "2"])],
    "tests": [
        ("pytest (no Slurm tests)",
         [PY, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--ignore=tests/test_slurm.py"]),
    ],
}  # fmt: skip


def empty_results(tree: Path) -> None:
    """Start the pipeline from nothing: no results/, no .snakemake/ metadata."""
    shutil.rmtree(tree / "results", ignore_errors=True)
    shutil.rmtree(tree / ".snakemake", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=[*COMMANDS, "all"])
    compare_args(ap)
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs: must be >= 1")
    kinds = list(COMMANDS) if args.what == "all" else [args.what]
    revs = {"base": resolve(args.base), "head": resolve(args.head)}
    with worktrees(revs["base"], revs["head"]) as (base_tree, head_tree):
        trees = {"base": base_tree, "head": head_tree}
        for kind in kinds:
            prepare = empty_results if kind == "pipeline" else None
            rows = [
                side_by_side(name, cmd, trees, args.runs, prepare) for name, cmd in COMMANDS[kind]
            ]
            ratio_report(kind, revs, rows, f"compare-{kind}.json")
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
