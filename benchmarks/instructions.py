"""Instructions of the allocation loop, two commits side by side: a count that does not move
with the load of a shared machine (wall time does, by 3-6x on the 2-core test machine).

Each commit is checked out into a temporary git worktree; for each, `valgrind --tool=cachegrind`
counts the instructions (I refs) of one process that fragments a node and runs `allocations`
order-9 allocations through direct compaction, and of the same process without them; the
difference is the loop's. Prints both and the ratio head/base.

    python benchmarks/instructions.py [--base HEAD~1] [--head HEAD] [--node 8G] [--allocations 1024]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import LAYOUT_PRELUDE, commit_of, resolve, worktrees  # noqa: E402

CHILD = LAYOUT_PRELUDE + (
    "import sys\n"
    "from migsim.units import parse_size\n"
    "p = platform.load_platform(platform.DEFAULT_PLATFORM)\n"
    "cfg = fragment_mod.FragmentConfig(node_bytes=parse_size(sys.argv[1]))\n"
    "z = fragment_mod.fragment(cfg, node_cpus=64)\n"
    "if int(sys.argv[2]):\n"
    "    study.simulate(p, state=z, allocations=int(sys.argv[2]))\n"
)


def instructions(tree: Path, node: str, allocations: int) -> int:
    """I refs of one child process with `tree`'s engine."""
    python = os.path.realpath(sys.executable)  # not a shim script: valgrind follows no exec
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           python, "-c", CHILD, node, str(allocations)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    m = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if out.returncode != 0 or m is None:
        raise SystemExit(f"cachegrind failed in {tree}:\n{out.stderr[-3000:]}")
    return int(m.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="HEAD~1")
    ap.add_argument("--head", default="HEAD")
    ap.add_argument("--node", default="8G", help="node size (8G)")
    ap.add_argument("--allocations", type=int, default=1024, help="order-9 allocations (1024)")
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing measured", file=sys.stderr)
        return 3
    loops = {}
    revs = {"base": resolve(args.base), "head": resolve(args.head)}
    with worktrees(revs["base"], revs["head"]) as (base_tree, head_tree):
        for label, tree in (("base", base_tree), ("head", head_tree)):
            full = instructions(tree, args.node, args.allocations)
            setup = instructions(tree, args.node, 0)
            loops[label] = full - setup
            print(f"{label}: {commit_of(revs[label])}")
            print(f"  {loops[label] / 1e6:.1f} M instructions in the loop "
                  f"({loops[label] / args.allocations / 1e3:.0f} k per allocation)")  # fmt: skip
    print(f"head/base: {loops['head'] / loops['base']:.3f} ({args.allocations} allocations, "
          f"{args.node} node)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
