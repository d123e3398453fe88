"""`migsim compaction` and `migsim reproduce compaction`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cli_args import choice, fraction, int_range
from .platform import DEFAULT_PLATFORM, load_platform
from .units import MAX_PAGE_ORDER, PAGE_SIZE, format_size, parse_size
from .versions import RFCS

REFERENCE_COMPACTION = Path(DEFAULT_PLATFORM).parents[1] / "reference" / "compaction_modes.csv"
MODES = ("baseline", "dma", "busy-baseline", "busy-dma")
PATTERNS = ("even", "random", "clustered")
DEFAULT_MAX_EVENTS = 2_000_000  # cap of a written trace (--trace-max-events)


def _node_size(text: str) -> int:
    try:
        n = parse_size(text, name="--node-size")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size such as 250G, got {text!r}") from None
    if n % (2 << 20) or n < (4 << 20):
        raise argparse.ArgumentTypeError(
            f"must be a whole number of 2M pageblocks, at least 4M; got {text!r}"
        )
    return n


def register(sub, rsub) -> None:
    """Add the compaction and reproduce-compaction sub-commands."""
    c = sub.add_parser("compaction", help="simulate order-9 allocations through direct compaction")
    c.add_argument("--mode", type=choice(MODES), default="baseline",
                   help="baseline | dma | busy-baseline | busy-dma")  # fmt: skip
    c.add_argument("--channels", type=int_range(1, 256), default=None,
                   help="DMA channels (dma modes; default 1, dcbm's nr_dma_chan default)")  # fmt: skip
    c.add_argument("--cluster-max", type=int_range(1, 512), default=32,
                   help="COMPACT_CLUSTER_MAX: pages isolated per migrate_pages() call")  # fmt: skip
    c.add_argument("--node-size", type=_node_size, default=250 << 30, help="node size (250G)")
    c.add_argument("--allocations", type=int_range(1), default=16384)
    c.add_argument("--order", type=int_range(0, MAX_PAGE_ORDER), default=9)
    c.add_argument("--free-ratio", type=fraction(), default=0.5,
                   help="fraction of every 2M region freed by the fragmenter, in [0, 1)")  # fmt: skip
    c.add_argument("--pattern", type=choice(PATTERNS), default="even")
    c.add_argument(
        "--fail-rate", type=float, default=0.0, help="DMA descriptor failure rate, [0, 1]"
    )
    c.add_argument("--rfc", type=choice(RFCS), default="v4",
                   help="series version whose dcbm runs: v2 | v3 | v4 | v6")  # fmt: skip
    c.add_argument("--seed", type=int_range(0, 2**63 - 1), default=1)
    c.add_argument("--state", type=Path, default=None, help="a saved fragmented state (.npz)")
    c.add_argument("--platform", type=Path, default=DEFAULT_PLATFORM, help="platform YAML file")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--trace", type=Path, default=None,
                   help="write the run's tracepoint events: tracefs text, or Parquet if FILE "
                   "ends in .parquet")  # fmt: skip
    c.add_argument("--trace-max-events", type=int_range(1), default=DEFAULT_MAX_EVENTS,
                   help=f"cap of the trace (events; default {DEFAULT_MAX_EVENTS})")  # fmt: skip
    c.set_defaults(func=cmd_compaction)

    r = rsub.add_parser("compaction", help="the RFC reply's compaction table")
    r.add_argument("--platform", type=Path, default=DEFAULT_PLATFORM)
    r.add_argument("--reference", type=Path, default=REFERENCE_COMPACTION)
    r.add_argument("--channels", type=int_range(1, 256), default=1)
    r.add_argument("--rfc", type=choice(RFCS), default="v4", help="v2 | v3 | v4 | v6")
    r.add_argument("--seed", type=int_range(0, 2**63 - 1), default=1)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_reproduce)


def _progress_wanted(json_out: bool) -> bool:
    return not json_out and (sys.stderr.isatty() or sys.stdout.isatty())


def _check_sizes(args) -> None:
    """Bad input before any work: the request must fit the node."""
    if args.state is not None:
        return
    request = args.allocations * (PAGE_SIZE << args.order)
    if request > args.node_size:
        raise ValueError(
            f"--allocations: {args.allocations} x {format_size(PAGE_SIZE << args.order)} = "
            f"{format_size(request)} is more memory than the {format_size(args.node_size)} node"
        )


def cmd_compaction(args) -> int:
    from .experiments.compaction import run_compaction

    if not args.mode.endswith("dma") and args.channels is not None:
        raise ValueError("--channels: only meaningful with --mode dma or busy-dma")
    if not 0.0 <= args.fail_rate <= 1.0:
        raise ValueError(f"--fail-rate: must be in [0, 1], got {args.fail_rate}")
    _check_sizes(args)
    platform = load_platform(args.platform)
    top = platform.dma.max_channels_count
    if args.channels is not None and args.channels > top:
        raise ValueError(f"--channels: the platform has 1..{top} DMA channels, got {args.channels}")
    res = run_compaction(
        platform, mode=args.mode, channels=args.channels or 1, cluster_max=args.cluster_max,
        node_bytes=args.node_size, allocations=args.allocations, free_ratio=args.free_ratio,
        pattern=args.pattern, seed=args.seed, fail_rate=args.fail_rate, state=args.state,
        order=args.order, progress=_progress_wanted(args.json), trace=args.trace is not None,
        rfc=args.rfc,
    )  # fmt: skip
    if args.trace is not None:
        write_run_trace(res, args.trace, args.trace_max_events)
    row = res.row()
    summary = res.summary()
    if args.json:
        row["fragmentation"] = res.fragmentation
        del row["alloc_latency_us"]  # the distribution: in the run Parquet; here percentiles
        print(json.dumps({**row, **summary}))
        return 0
    print(
        f"{args.allocations} order-{args.order} allocations on a {format_size(res.node_bytes)} node "
        f"({args.pattern}, free ratio {args.free_ratio:g}), mode {args.mode}"
        + (f", {res.channels} DMA channel(s)" if res.channels else "")
    )
    print(f"  wall time        {row['wall_ms']:12.0f} ms")
    print(f"  pages migrated   {row['pages_migrated']:12d}")
    if row["dma_copies"] is not None:
        print(f"  DMA copies       {row['dma_copies']:12d}")
    if row["hog_iterations"] is not None:
        print(f"  hog iterations   {row['hog_iterations']:12d}")
    print(
        f"  CPU              user {row['user_pct']:.2f}%  sys {row['sys_pct']:.2f}%  "
        f"idle {row['idle_pct']:.2f}%"
    )
    print(
        f"  allocations      {row['alloc_success']} ok, {row['alloc_fail']} failed; "
        f"{row['migrate_calls']} migrate_pages() calls"
    )
    for k in ("compact_stall", "compact_success", "compact_fail", "compact_migrate_scanned",
              "compact_free_scanned", "compact_isolated", "pgmigrate_success", "pgmigrate_fail"):  # fmt: skip
        print(f"  {k:<24} {row[k]}")
    lat = summary["alloc_latency_us"]
    if lat["p50"] is not None:
        print("  alloc latency us " + "  ".join(f"{k} {v:.1f}" for k, v in lat.items()))
    return 0


def write_run_trace(res, path: Path, max_events: int) -> None:
    """The run's tracepoint events into `path` (text or .parquet), at most `max_events`;
    says on stderr when the cap cut the trace."""
    from .tables import write_parquet
    from .trace import TRACE_EVENTS, simulated_events, write_trace_text

    start, end = res.zone_pfns
    events, total = simulated_events(
        res.log, res.cost, zone_start=start, zone_end=end, max_events=max_events
    )
    if total > events.height:
        print(
            f"migsim compaction: --trace: the run has {total} events, wrote the first "
            f"{events.height} (raise --trace-max-events to keep all)",
            file=sys.stderr,
        )
    if path.suffix == ".parquet":
        write_parquet(events, path, TRACE_EVENTS, config_hash="", seed=res.seed,
                      extra={"mode": res.mode, "events_total": total})  # fmt: skip
    else:
        write_trace_text(events, path)


def cmd_reproduce(args) -> int:
    from .calibrate_compaction import read_compaction_reference
    from .experiments.compaction import reproduce_compaction
    from .tables import offload_saving_per_page_us, per_page_us

    platform = load_platform(args.platform)
    ref = read_compaction_reference(args.reference)  # printed beside, never simulated from
    rows = reproduce_compaction(
        platform,
        seed=args.seed,
        channels=args.channels,
        progress=_progress_wanted(args.json),
        rfc=args.rfc,
    )
    keys = ("mode", "wall_ms", "pages_migrated", "dma_copies", "hog_iterations",
            "user_pct", "sys_pct", "idle_pct")  # fmt: skip
    sim = [{k: r[k] for k in keys} for r in rows]
    pub = {r["mode"]: r for r in ref.iter_rows(named=True)}
    published = [pub[r["mode"]] for r in sim]
    by_mode = {r["mode"]: r for r in sim}
    if args.json:

        def per_page(rows):
            return [{"mode": r["mode"], **per_page_us(r)} for r in rows]

        print(json.dumps({
            "platform": platform.name, "channels": args.channels, "modes": sim,
            "published": published,
            "per_page_us": {"simulated": per_page(sim), "published": per_page(published)},
            "offload_saving_us": {"simulated": offload_saving_per_page_us(by_mode),
                                  "published": offload_saving_per_page_us(pub)},
        }))  # fmt: skip
        return 0

    def fmt(v, pct=False):
        if v is None:
            return "-"
        return f"{v:.2f}%" if pct else f"{v:.0f}"

    print(
        f"Compaction, 16384 order-9 allocations on a 250G node: simulated ({platform.name}, "
        f"{args.channels} DMA channel(s)) / published"
    )
    head = ("mode", "wall ms", "migrated", "DMA copies", "hog iters", "user", "sys", "idle")
    print(f"{head[0]:<14}" + "".join(f"{h:>27}" for h in head[1:]))
    for s in sim:
        p = pub[s["mode"]]
        cells = []
        for k in keys[1:]:
            pct = k.endswith("_pct")
            cells.append(f"{fmt(s[k], pct)} / {fmt(p.get(k), pct)}")
        print(f"{s['mode']:<14}" + "".join(f"{c:>27}" for c in cells))
    b, d = sim[2]["hog_iterations"], sim[3]["hog_iterations"]
    pb, pd = pub["busy-baseline"]["hog_iterations"], pub["busy-dma"]["hog_iterations"]
    print(f"hog iterations, busy-dma over busy-baseline: {100 * (d / b - 1):+.1f}% simulated, "
          f"{100 * (pd / pb - 1):+.1f}% published")  # fmt: skip
    print("\nper migrated page, us: simulated / published")
    print(f"{'mode':<14}" + "".join(f"{h:>18}" for h in ("wall", "sys", "idle", "user (hog)")))
    for s in sim:
        ps, pp = per_page_us(s), per_page_us(pub[s["mode"]])
        cells = [f"{ps[k]:.3f} / {pp[k]:.3f}" for k in ("wall_us", "sys_us", "idle_us", "user_us")]
        print(f"{s['mode']:<14}" + "".join(f"{c:>18}" for c in cells))
    ss, sp = offload_saving_per_page_us(by_mode), offload_saving_per_page_us(pub)
    print(f"kernel CPU saved by offload per page: idle {ss['idle']:.3f} / {sp['idle']:.3f} us, "
          f"busy {ss['busy']:.3f} / {sp['busy']:.3f} us")  # fmt: skip
    return 0
