"""`migsim calibrate`: fit the platform file of the published machine (or of this host)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from migsim.atomic import atomic_write_text
from migsim.cli.args import existing_file, limit_arg, read_table, seed_arg, size_arg
from migsim.cli.commands import command_help
from migsim.cost.platform import DEFAULT_PLATFORM
from migsim.limits import REPEATS
from migsim.paths import REFERENCE_DIR as _REFERENCE_DIR

REFERENCE_DIR = Path(_REFERENCE_DIR)


def register(sub) -> None:
    """Add the calibrate sub-command."""
    c = sub.add_parser("calibrate", help=command_help("calibrate"))
    c.add_argument(
        "--reference", type=existing_file("--reference"),
        default=REFERENCE_DIR / "move_pages_throughput.csv",
    )  # fmt: skip
    c.add_argument(
        "--compaction-reference", type=existing_file("--compaction-reference"),
        default=REFERENCE_DIR / "compaction_modes.csv",
    )  # fmt: skip
    c.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"platform YAML to write (default {DEFAULT_PLATFORM.name}, or host.yaml with --host)",
    )
    c.add_argument("--name", default=None, help="platform name (default from the file name)")
    c.add_argument(
        "--check", action="store_true",
        help="fit and compare with the files in place without writing: byte for byte, "
        "numbers within FLOAT_REL_TOL (1e-5) relative plus one unit of their last written "
        "digit (exit 1 and the first differing line of each file that would change)",
    )  # fmt: skip
    h = c.add_argument_group(
        "host calibration",
        "--host probes this machine (copy bandwidth; compaction through "
        "/proc/sys/vm/compact_memory when root) and fits its platform; the DMA part stays "
        "the published engine's, flagged as such in the file",
    )
    h.add_argument("--host", action="store_true", help="calibrate this machine from its probes")
    h.add_argument("--base", type=existing_file("--base"), default=DEFAULT_PLATFORM,
                   help="platform to start from")  # fmt: skip
    h.add_argument("--size", type=size_arg("--size"), default=1 << 30,
                   help="region of the compaction probe (default 1G)")  # fmt: skip
    h.add_argument("--repeats", type=limit_arg(REPEATS, "--repeats"), default=5,
                   help="repetitions of every probe cell")  # fmt: skip
    h.add_argument("--seed", type=seed_arg(), default=1)
    c.set_defaults(func=cmd_calibrate)


def residual_paths(out: Path) -> tuple[Path, Path]:
    """Where the residual tables of the two stages go, beside the platform file."""
    return out.with_suffix(".residuals.csv"), out.with_name(out.stem + ".compaction-residuals.csv")


def cmd_calibrate(args) -> int:
    if args.host:
        if args.check:
            raise ValueError("--check: not with --host (a host's probes differ run to run)")
        return cmd_calibrate_host(args)
    args.out = args.out or DEFAULT_PLATFORM
    if "numpy" not in sys.modules:  # one BLAS thread: the same reductions in the same order
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
    from migsim.calibrate.compaction import calibrate_stage2, read_compaction_reference
    from migsim.calibrate.series import read_series
    from migsim.calibrate.throughput import (
        fit_mt,
        fit_throughput,
        mt_fit_cells,
        read_reference,
        stage1_header,
    )

    cells = read_table("--reference", args.reference, read_reference)
    read_table("--compaction-reference", args.compaction_reference, read_compaction_reference)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # fit into a directory beside the target, then compare (--check) or move into place
    with tempfile.TemporaryDirectory(prefix=".calibrate.", dir=args.out.parent) as tmp:
        out = Path(tmp) / args.out.name
        fit = fit_throughput(cells, args.name or args.out.stem)
        # stage 1b: the multi-threaded copy's bandwidths on the v2 tables (mt_fit_cells)
        mt_cells = mt_fit_cells(read_series(args.reference.parent))
        fit.platform, _ = fit_mt(fit.platform, mt_cells)
        stage1, stage2 = residual_paths(out)
        atomic_write_text(stage1, fit.residuals.write_csv(float_precision=4))
        calibrate_stage2(
            fit.platform,
            args.compaction_reference,
            out,
            stage2,
            header=stage1_header(fit, args.reference.name),
        )
        pairs = [(new, args.out.parent / new.name) for new in (out, stage1, stage2)]
        changed = [(new, old, _first_difference(new, old)) for new, old in pairs]
        changed = [c for c in changed if c[2] is not None]
        if args.check:
            for _, old, diff in changed:
                print(f"{old}: would change ({diff})")
            if not changed:
                print(f"{args.out} and its residual tables are what the fit writes")
            return 1 if changed else 0
        for _, old, diff in changed:
            if old.exists() and _tracked_by_git(old):
                print(
                    f"migsim calibrate: warning: overwriting {old}, which git tracks ({diff}); "
                    "`git diff` shows the change, `git checkout` restores it",
                    file=sys.stderr,
                )
        for new, old in pairs:
            os.replace(new, old)
    stage1, stage2 = residual_paths(args.out)
    print(
        f"fitted {args.out} (throughput MAPE {fit.mape_pct:.2f}%); "
        f"residuals in {stage1} and {stage2}"
    )
    print(
        f"offloading one 4K folio's copy saves {fit.saving_4k[0]:.3f} +- {fit.saving_4k[1]:.3f} "
        "us of CPU (CPU copy minus descriptor preparation)"
    )
    return 0


# A refit on another CPU is not bit-identical: scipy's least-squares steps and LAPACK's
# kernels round differently, which moves the 7th-10th significant digit of a fitted value or
# covariance (seen between two x86-64 VMs: dma.ramp_kb's sd 22.963444 -> 22.963445, a hog
# count 73017252488 -> 73017252188, 4e-9 relative; the worst, 3.8e-6 relative, a small
# off-diagonal covariance entry, 0.00165963541 -> 0.00165962915). --check is a change detector for
# the fit, not for the floating-point unit, so numbers compare within this relative tolerance
# plus one unit of the last digit written (a value on a rounding boundary); any other
# difference, and every non-numeric byte, still counts.
FLOAT_REL_TOL = 1e-5
_NUMBER = re.compile(r"[-+]?\d+(?:\.(\d*))?(?:[eE]([-+]?\d+))?")


def _numbers_agree(x: str, y: str) -> bool:
    """Whether two lines differ only in numbers that agree within FLOAT_REL_TOL plus one unit
    of the last written digit (the finer of the two)."""
    if _NUMBER.sub("#", x) != _NUMBER.sub("#", y):
        return False
    for mx, my in zip(_NUMBER.finditer(x), _NUMBER.finditer(y), strict=True):
        a, b = float(mx.group(0)), float(my.group(0))
        ulp = min(10.0 ** (int(m.group(2) or 0) - len(m.group(1) or "")) for m in (mx, my))
        if abs(a - b) > FLOAT_REL_TOL * max(abs(a), abs(b)) + 1.01 * ulp:
            return False
    return True


def _first_difference(new: Path, old: Path) -> str | None:
    """None if the files are byte-identical or differ only in numbers within FLOAT_REL_TOL
    (a refit on another CPU), else where they first differ (for messages)."""
    if not old.is_file():
        return "new file"
    a, b = new.read_bytes(), old.read_bytes()
    if a == b:
        return None
    la, lb = a.decode(errors="replace").splitlines(), b.decode(errors="replace").splitlines()
    for i, (x, y) in enumerate(zip(la, lb, strict=False), 1):
        if x != y and not _numbers_agree(x, y):
            return f"line {i}: {y.strip()!r} -> {x.strip()!r}"
    if len(la) == len(lb):
        return None
    return f"{len(lb)} lines -> {len(la)} lines"


def _tracked_by_git(path: Path) -> bool:
    """Whether `path` is a file git tracks (a committed platform file)."""
    try:
        proc = subprocess.run(
            ["git", "ls-files", "--error-unmatch", path.name],
            cwd=path.parent, capture_output=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def cmd_calibrate_host(args) -> int:
    """`migsim calibrate --host`: probe this machine and fit its platform file."""
    from migsim.calibrate.host import calibrate_from_probes
    from migsim.cost.platform import load_platform

    size = args.size
    out = args.out or DEFAULT_PLATFORM.with_name("host.yaml")
    platform, skipped = calibrate_from_probes(
        load_platform(args.base), out, size=size, repeats=args.repeats, seed=args.seed,
        name=args.name, progress=print,
    )  # fmt: skip
    fit = platform.meta.get("host", {}).get("compaction_fit")
    if skipped or isinstance(fit, str):
        why = skipped or fit.removeprefix("skipped: ")
        print(f"compaction fit skipped ({why}): compaction costs left at the base values")
    print(f"fitted {out} ({platform.name})")
    return 0
