"""`migsim calibrate`: fit the platform file of the published machine (or of this host)."""

from __future__ import annotations

from pathlib import Path

from .atomic import atomic_write_text
from .platform import DEFAULT_PLATFORM

REFERENCE_DIR = Path(DEFAULT_PLATFORM).parents[1] / "reference"


def register(sub, rsub) -> None:
    """Add the calibrate sub-command."""
    c = sub.add_parser(
        "calibrate",
        help="fit a platform's parameters: stage 1 on the throughput table, stage 2 on the "
        "baseline compaction row",
    )
    c.add_argument("--reference", type=Path, default=REFERENCE_DIR / "move_pages_throughput.csv")
    c.add_argument(
        "--compaction-reference", type=Path, default=REFERENCE_DIR / "compaction_modes.csv"
    )
    c.add_argument("--out", type=Path, default=DEFAULT_PLATFORM, help="platform YAML to write")
    c.add_argument("--name", default="epyc-zen3-ptdma")
    c.set_defaults(func=cmd_calibrate)


def residual_paths(out: Path) -> tuple[Path, Path]:
    """Where the residual tables of the two stages go, beside the platform file."""
    return out.with_suffix(".residuals.csv"), out.with_name(out.stem + ".compaction-residuals.csv")


def cmd_calibrate(args) -> int:
    from .calibrate import fit_throughput, read_reference, stage1_header
    from .calibrate_compaction import calibrate_stage2

    for name in ("reference", "compaction_reference"):
        if not getattr(args, name).is_file():
            raise ValueError(f"--{name.replace('_', '-')}: no such file {getattr(args, name)}")
    fit = fit_throughput(read_reference(args.reference), args.name)
    stage1, stage2 = residual_paths(args.out)
    atomic_write_text(stage1, fit.residuals.write_csv(float_precision=4))
    calibrate_stage2(
        fit.platform,
        args.compaction_reference,
        args.out,
        stage2,
        header=stage1_header(fit, args.reference.name),
    )
    print(
        f"fitted {args.out} (throughput MAPE {fit.mape_pct:.2f}%); "
        f"residuals in {stage1} and {stage2}"
    )
    return 0
