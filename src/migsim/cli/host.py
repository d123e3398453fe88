"""`migsim host snapshot|twin|predict`: this machine's physical memory as a snapshot, a real
compact_memory beside its prediction from that snapshot, and the prediction alone.

Exit codes: 0 done, 2 bad argument (one line naming it), 3 cannot run here (not root, no
/proc/kpageflags, compact_memory not writable; the reason is printed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from migsim.cli.args import EXIT_UNAVAILABLE, fraction, int_range, size_arg
from migsim.cli.commands import command_help


def register(sub) -> None:
    """Add `migsim host snapshot`, `migsim host twin` and `migsim host predict`."""
    p = sub.add_parser("host", help=command_help("host"))
    hsub = p.add_subparsers(dest="host", required=True, metavar="ACTION")

    s = hsub.add_parser("snapshot", help="snapshot physical memory to a file (root)")
    s.add_argument("out", type=Path, help="snapshot file to write (.npz)")
    s.add_argument(
        "--from",
        dest="from_dir",
        type=Path,
        default=None,
        help="build it from saved copies (kpageflags, kpagecount, zoneinfo, ...)",
    )
    s.add_argument(
        "--raw", type=Path, default=None, help="also save the raw files here (what --from reads)"
    )
    s.add_argument("--no-count", action="store_true", help="skip /proc/kpagecount")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_snapshot)

    t = hsub.add_parser("twin", help="real compact_memory beside its prediction (root)")
    t.add_argument(
        "--size",
        type=size_arg("--size"),
        default=2 << 30,
        help="region to fragment (default 2G; at most 25%% of MemAvailable)",
    )
    t.add_argument(
        "--free-ratio",
        type=fraction(lo_open=True),
        default=0.5,
        help="fraction of each 2 MiB region freed, in (0, 1) (default 0.5)",
    )
    t.add_argument("--runs", type=int_range(1, 100), default=5)
    t.add_argument("--seed", type=int_range(0, 2**63 - 1), default=1)
    t.add_argument("--platform", type=Path, default=None, help="platform YAML for the costs")
    t.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=cmd_twin)

    q = hsub.add_parser("predict", help="predict compact_memory of a saved snapshot")
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--from", dest="from_dir", type=Path, help="directory of saved raw files")
    src.add_argument("--snapshot", type=Path, help="snapshot file written by host snapshot")
    q.add_argument("--platform", type=Path, default=None, help="platform YAML for the costs")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=cmd_predict)
    # fmt: skip


def _platform(path: Path | None):
    if path is None:
        return None
    from migsim.cost.platform import load_platform

    if not path.is_file():
        raise ValueError(f"--platform: no such file {path}")
    return load_platform(path)


def cmd_snapshot(args) -> int:
    from migsim.host import snapshot as S

    try:
        if args.from_dir is not None:
            snap = S.from_dir(args.from_dir)
        else:
            snap = S.take(args.raw, with_count=not args.no_count)
    except S.SnapshotUnavailable as exc:
        print(f"migsim host snapshot: unavailable on this machine: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    snap.save(args.out)
    doc = {"out": str(args.out), "meta": snap.meta, "check": snap.check()}
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"wrote {args.out} ({snap.nr_pfns:,} pfns, {len(snap.zones)} zones)")
    for k in ("read_s", "build_s", "snapshot_s", "peak_rss_mb"):
        if k in snap.meta:
            print(f"  {k}: {snap.meta[k]:.3f}")
    for c in doc["check"]:
        print(
            f"  zone {c['zone']}: free {c['free_pages']:,} (NR_FREE_PAGES {c['nr_free_pages']:,}),"
            f" valid pageblocks {c['valid_blocks']} (pagetypeinfo {c['pagetypeinfo_blocks']}),"
            f" migratetypes {c['estimated_block_counts']} (pagetypeinfo "
            f"{c['pagetypeinfo_block_counts']})"
        )
    return 0


def cmd_twin(args) -> int:
    from migsim.host import probe, snapshot, twin

    plat = _platform(args.platform)
    progress = None if args.json else (lambda msg: print("  " + msg, flush=True))
    try:
        doc = twin.host_twin(
            args.size, args.free_ratio, args.runs, args.seed, plat, progress=progress
        )
    except (probe.ProbeUnavailable, snapshot.SnapshotUnavailable) as exc:
        print(f"migsim host twin: unavailable on this machine: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    text = json.dumps(doc)
    if args.out:
        from migsim.atomic import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    if args.json:
        print(text)
        return 0
    keys = (
        "pgmigrate_success",
        "compact_migrate_scanned",
        "compact_free_scanned",
        "compact_isolated",
        "seconds",
        "cpu_seconds",
    )
    print(f"{'run':>3} " + " ".join(f"{k:>32}" for k in keys))
    for i, r in enumerate(doc["runs"]):
        m, p = {**r["measured"], "cpu_seconds": r["cpu_seconds"]}, r["predicted"]
        cells = []
        for k in keys:
            pk = f"{k}_fitted" if k in ("seconds", "cpu_seconds") else k
            pv = p.get(pk, p["seconds"])
            err = pv / m[k] - 1 if m[k] else float("nan")
            cells.append(f"{m[k]:>12.4g} {pv:>12.4g} {err * 100:+6.1f}%")
        print(f"{i:>3} " + " ".join(f"{c:>32}" for c in cells))
    print(
        "each cell: measured, predicted, error; seconds (wall, the write under SCHED_FIFO) and "
        "cpu_seconds (the writing thread's CPU time): predicted after the host fit of one "
        "common cost scale on the other runs whose counters the twin predicted (fit_seeds), "
        "the wall fit on their wall less the hypervisor's steal of the writer's CPU "
        "(seconds_fitted: an uncontended host; seconds_fitted_share in --json adds this "
        "run's measured CPU share and steal)"
    )
    by = doc.get("discarded_by", {})
    print(
        f"{len(doc['runs'])} runs kept of {doc.get('attempts', len(doc['runs']))} attempts; "
        f"discarded by the drift rule {by.get('drift', 0)}, by the trace rule "
        f"{by.get('trace', 0)} (see the lines above)"
    )
    return 0


def cmd_predict(args) -> int:
    from migsim.host import snapshot as S
    from migsim.host import twin

    snap = S.from_dir(args.from_dir) if args.from_dir else S.Snapshot.load(args.snapshot)
    doc = twin.predict_from(snap, _platform(args.platform))
    if args.json:
        print(json.dumps(doc))
        return 0
    for k, v in doc["predicted"].items():
        print(f"{k:>26} {v:>12,}")
    print(f"{'seconds':>26} {doc['seconds']:>12.4f}")
    return 0
