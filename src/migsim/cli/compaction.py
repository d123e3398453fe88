"""`migsim compaction` and `migsim reproduce compaction`."""

from __future__ import annotations

import os
import sys

from migsim import limits
from migsim.cli.args import (
    check_platform_count,
    choice,
    existing_file,
    int_range,
    limit_arg,
    only_with,
    path_arg,
    platform_arg,
    read_table,
    seed_arg,
    size_limit_arg,
    whole_number,
)
from migsim.cli.commands import command_help
from migsim.paths import REFERENCE_DIR
from migsim.units import PAGE_SIZE, format_size
from migsim.versions import RFCS

REFERENCE_COMPACTION = os.path.join(REFERENCE_DIR, "compaction_modes.csv")
MODES = ("baseline", "dma", "busy-baseline", "busy-dma")
PATTERNS = ("even", "random", "clustered")
DEFAULT_MAX_EVENTS = 2_000_000  # cap of a written trace (--trace-max-events)
DEFAULT_NODE_BYTES = 250 << 30
# __alloc_pages_slowpath: an order-0 request never enters direct compaction
# (__alloc_pages_direct_compact returns at once for order 0; costly_order paths start above it)
ORDER0_NOTE = (
    "order-0 allocations never enter direct compaction (__alloc_pages_direct_compact returns "
    "at once for order 0): nothing was compacted or migrated"
)
CAPTURE_CONTEXTS = ("task", "kthread")  # migsim.kernel.compaction.CAPTURE_CONTEXTS


def register(sub) -> None:
    """Add the compaction sub-command."""
    c = sub.add_parser("compaction", help=command_help("compaction"))
    c.add_argument("--mode", type=choice(MODES), default="baseline", help=" | ".join(MODES))
    c.add_argument("--channels", type=whole_number("--channels"), default=None,
                   help="DMA channels (dma modes; default 1, dcbm's nr_dma_chan default)")  # fmt: skip
    c.add_argument("--cluster-max", type=limit_arg(limits.CLUSTER_MAX, "--cluster-max"),
                   default=32, help="COMPACT_CLUSTER_MAX: pages isolated per migrate_pages() call")  # fmt: skip
    c.add_argument("--node-size", type=size_limit_arg(limits.NODE_BYTES, "--node-size"),
                   default=None, help="node size (default 250G; not with --state)")  # fmt: skip
    c.add_argument("--allocations", type=limit_arg(limits.ALLOCATIONS, "--allocations"),
                   default=16384)  # fmt: skip
    c.add_argument("--order", type=limit_arg(limits.ORDER, "--order"), default=9)
    c.add_argument("--free-ratio", type=limit_arg(limits.FREE_RATIO, "--free-ratio"), default=None,
                   help="fraction of every 2M region freed by the fragmenter, in [0, 1) "
                   "(default 0.5; not with --state)")  # fmt: skip
    c.add_argument("--pattern", type=choice(PATTERNS), default=None,
                   help="even | random | clustered (default even; not with --state)")  # fmt: skip
    c.add_argument("--fail-rate", type=limit_arg(limits.FAIL_RATE, "--fail-rate"), default=None,
                   help="DMA descriptor failure probability in [0, 1] (dma modes)")  # fmt: skip
    c.add_argument("--rfc", type=choice(RFCS), default="v4",
                   help="series version whose dcbm runs: v2 | v3 | v4 | v6")  # fmt: skip
    c.add_argument("--seed", type=seed_arg(), default=1)
    c.add_argument("--state", type=existing_file("--state"), default=None,
                   help="a saved fragmented state (.npz); it fixes the node's size and layout")  # fmt: skip
    c.add_argument("--capture", type=choice(CAPTURE_CONTEXTS), default="task",
                   help="context of the allocating loop: task (captures) or kthread (task_capc)")  # fmt: skip
    platform_arg(c)
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--trace", type=path_arg, default=None,
                   help="write the run's tracepoint events: tracefs text, or Parquet if FILE "
                   "ends in .parquet")  # fmt: skip
    c.add_argument("--trace-max-events", type=int_range(1, name="--trace-max-events"), default=DEFAULT_MAX_EVENTS,
                   help=f"cap of the trace (events; default {DEFAULT_MAX_EVENTS})")  # fmt: skip
    c.set_defaults(func=cmd_compaction)


def register_reproduce(rsub) -> None:
    """Add ``migsim reproduce compaction``
    (declared by migsim.studies.EXPERIMENTS, whose reproduce field names this module)."""
    r = rsub.add_parser("compaction", help="the RFC reply's compaction table")
    platform_arg(r)
    r.add_argument("--reference", type=existing_file("--reference"), default=REFERENCE_COMPACTION)
    r.add_argument("--channels", type=whole_number("--channels"), default=1)
    r.add_argument("--rfc", type=choice(RFCS), default="v4", help="v2 | v3 | v4 | v6")
    r.add_argument("--seed", type=seed_arg(), default=1)
    r.add_argument("--capture", type=choice(CAPTURE_CONTEXTS), default="task",
                   help="context of the allocating loop: task (captures) or kthread (task_capc)")  # fmt: skip
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_reproduce)


def _progress_wanted(json_out: bool) -> bool:
    return not json_out and (sys.stderr.isatty() or sys.stdout.isatty())


def check_compaction_args(args, platform) -> None:
    """Checks past parsing, before any work (raises LimitError naming the flag): arguments the
    mode ignores, --state against the node flags, channels against the platform, the request
    against the node, memory. Fills in the node defaults."""
    dma = args.mode.endswith("dma")
    only_with("--channels", args.channels is not None, dma, "--mode dma or busy-dma")
    only_with("--fail-rate", args.fail_rate is not None, dma, "--mode dma or busy-dma")
    check_platform_count(args.channels, "--channels", limits.CHANNELS,
                         platform.dma.max_channels_count, platform.name)  # fmt: skip
    if args.state is not None:
        for flag in ("node_size", "free_ratio", "pattern"):
            if getattr(args, flag) is not None:
                raise limits.LimitError(
                    f"--{flag.replace('_', '-')}: not with --state (the saved state fixes the "
                    "node's size and fragmentation); give one or the other"
                )
        from migsim.kernel.fragment import read_state_meta

        meta = read_state_meta(args.state)
        node_bytes = int(meta["nr_pages"]) * PAGE_SIZE
        cfg = meta.get("config") or {}
        args.free_ratio, args.pattern = cfg.get("free_ratio"), cfg.get("pattern")
        where = f"the {format_size(node_bytes)} node of --state {args.state}"
    else:
        node_bytes = DEFAULT_NODE_BYTES if args.node_size is None else args.node_size
        args.free_ratio = 0.5 if args.free_ratio is None else args.free_ratio
        args.pattern = args.pattern or "even"
        where = f"the {format_size(node_bytes)} node"
    args.node_size = node_bytes
    request = args.allocations * (PAGE_SIZE << args.order)
    if request > node_bytes:
        raise limits.LimitError(
            f"--allocations: {args.allocations} x {format_size(PAGE_SIZE << args.order)} = "
            f"{format_size(request)} is more memory than {where}"
        )
    limits.check_memory(limits.compaction_memory(node_bytes), "--node-size", f"simulating {where}")


def cmd_compaction(args) -> int:
    from migsim.cost.platform import load_platform
    from migsim.studies.compaction import run_compaction

    platform = load_platform(args.platform)
    check_compaction_args(args, platform)
    res = run_compaction(
        platform, mode=args.mode, channels=args.channels or 1, cluster_max=args.cluster_max,
        node_bytes=args.node_size, allocations=args.allocations,
        free_ratio=args.free_ratio if args.free_ratio is not None else 0.5,
        pattern=args.pattern or "even", seed=args.seed, fail_rate=args.fail_rate or 0.0,
        state=args.state,
        order=args.order, progress=_progress_wanted(args.json), trace=args.trace is not None,
        rfc=args.rfc,
        capture=args.capture,
    )  # fmt: skip
    if args.trace is not None:
        from migsim.studies.kernel_formats import write_trace

        events, total = write_trace(res, args.trace, args.trace_max_events)
        if total > events:
            print(
                f"migsim compaction: --trace: the run has {total} events, wrote the first "
                f"{events} (raise --trace-max-events to keep all)",
                file=sys.stderr,
            )
    row = res.row()
    summary = res.summary()
    if args.json:
        row["fragmentation"] = res.fragmentation
        del row["alloc_latency_us"]  # the distribution: in the run Parquet; here percentiles
        if args.order == 0:
            row["note"] = ORDER0_NOTE
        import json  # here: `--help` and a table print need none

        print(json.dumps({**row, **summary}))
        return 0
    layout = (
        f"{args.pattern}, free ratio {args.free_ratio:g}"
        if args.pattern is not None and args.free_ratio is not None
        else f"from {args.state}"
    )
    print(
        f"{args.allocations} order-{args.order} allocations on a {format_size(res.node_bytes)} node "
        f"({layout}), mode {args.mode}"
        + (f", {res.channels} DMA channel(s)" if res.channels else "")
    )
    if args.order == 0:
        print(f"  note: {ORDER0_NOTE}")
    print(f"  wall time        {row['wall_ms']:12.0f} ms")
    print(f"  pages migrated   {row['pages_migrated']:12d}")
    if row["dma_copies"] is not None:
        print(f"  DMA copies       {row['dma_copies']:12d}")
    if row["hog_iterations"] is not None:
        print(f"  hog iterations   {row['hog_iterations']:12d}")
    print(
        f"  CPU              user {row['user_pct']:.2f}%  sys {row['sys_pct']:.2f}%  "
        f"idle {row['idle_pct']:.2f}%  irq {row['irq_pct']:.2f}%  softirq {row['softirq_pct']:.2f}%"
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


def cmd_reproduce(args) -> int:
    from migsim.calibrate.compaction import read_compaction_reference
    from migsim.cost.platform import load_platform
    from migsim.studies.compaction import offload_saving_per_page_us, per_page_us, reproduce_results

    platform = load_platform(args.platform)
    check_platform_count(args.channels, "--channels", limits.CHANNELS,
                         platform.dma.max_channels_count, platform.name)  # fmt: skip
    # printed beside, never simulated from
    ref = read_table("--reference", args.reference, read_compaction_reference)
    page_run, results = reproduce_results(
        platform, seed=args.seed, channels=args.channels, capture=args.capture,
        progress=_progress_wanted(args.json), rfc=args.rfc,
    )  # fmt: skip
    rows = [r.row() for r in results]
    from migsim.calibrate.compaction import prediction_spread

    spread = prediction_spread(
        platform, page_run, args.reference, channels=args.channels, rfc=args.rfc
    )
    keys = ("mode", "wall_ms", "pages_migrated", "dma_copies", "hog_iterations",
            "user_pct", "sys_pct", "idle_pct", "irq_pct", "softirq_pct")  # fmt: skip
    sim = [{k: r[k] for k in keys} for r in rows]
    for s, r in zip(sim, results, strict=True):
        # the idle task after its idle state ended: in no /proc/stat column (cost.timeline)
        s["unaccounted_pct"] = r.cost.timeline.unaccounted_pct
        s["interval"] = spread["interval"][s["mode"]]
    pub = {r["mode"]: r for r in ref.iter_rows(named=True)}
    published = [_with_missing_share(pub[r["mode"]]) for r in sim]
    by_mode = {r["mode"]: r for r in sim}
    parts = {r.mode: _parts_per_page(r) for r in results}
    per_alloc = {r.mode: r.pages_migrated / max(r.alloc_success, 1) for r in results}
    busy = ("busy-baseline", "busy-dma")
    hog_rate = {"simulated": {m: _hog_per_user_s(by_mode[m]) for m in busy},
                "published": {m: _hog_per_user_s(pub[m]) for m in busy}}  # fmt: skip
    if args.json:

        def per_page(rows):
            return [{"mode": r["mode"], **per_page_us(_missing_only(r))} for r in rows]

        import json  # here: `--help` and a table print need none

        print(json.dumps({
            "platform": platform.name, "channels": args.channels, "capture": args.capture,
            "modes": sim, "published": published,
            "pages_per_allocation": per_alloc,
            "hog_iterations_per_user_s": hog_rate,
            "per_page_us": {"simulated": per_page(sim), "published": per_page(published)},
            "parts_per_page_us": parts,
            "sensitivity": spread["sensitivity"],
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
        f"{args.channels} DMA channel(s), allocating {args.capture}) / published"
    )
    head = ("mode", "wall ms", "migrated", "DMA copies", "hog iters", "user", "sys", "idle",
            "not user/sys/idle")  # fmt: skip
    print(f"{head[0]:<14}" + "".join(f"{h:>27}" for h in head[1:]))
    for s, p in zip(sim, published, strict=True):
        cells = [f"{fmt(s[k], k.endswith('_pct'))} / {fmt(p.get(k), k.endswith('_pct'))}"
                 for k in keys[1:8]]  # fmt: skip
        rest = s["irq_pct"] + s["softirq_pct"] + s["unaccounted_pct"]
        cells.append(f"{rest:.2f}% / {p['irq_softirq_pct']:.2f}%")
        print(f"{s['mode']:<14}" + "".join(f"{c:>27}" for c in cells))
    print("not user/sys/idle, simulated = irq + softirq + the idle task after its idle state "
          "ended (in no /proc/stat column): "
          + ", ".join(f"{s['mode']} {s['irq_pct'] + s['softirq_pct']:.2f} + "
                      f"{s['unaccounted_pct']:.2f}" for s in sim))  # fmt: skip
    b, d = sim[2]["hog_iterations"], sim[3]["hog_iterations"]
    pb, pd = pub["busy-baseline"]["hog_iterations"], pub["busy-dma"]["hog_iterations"]
    print(f"hog iterations, busy-dma over busy-baseline: {100 * (d / b - 1):+.1f}% simulated, "
          f"{100 * (pd / pb - 1):+.1f}% published")  # fmt: skip
    hs, hp = hog_rate["simulated"], hog_rate["published"]
    print(f"hog iterations per second of user time, busy-baseline / busy-dma: "
          f"{hs['busy-baseline'] / 1e9:.3f}e9 / {hs['busy-dma'] / 1e9:.3f}e9 simulated, "
          f"{hp['busy-baseline'] / 1e9:.3f}e9 / {hp['busy-dma'] / 1e9:.3f}e9 published "
          f"({100 * (hp['busy-dma'] / hp['busy-baseline'] - 1):+.1f}%)")  # fmt: skip
    print(f"pages migrated per allocation: {per_alloc['baseline']:.1f} simulated, "
          f"{pub['baseline']['pages_migrated'] / 16384:.1f} published (baseline)")  # fmt: skip
    print("\nper migrated page, us: simulated / published")
    cols = ("wall", "sys", "idle", "user (hog)", "not u/s/i")
    print(f"{'mode':<14}" + "".join(f"{h:>18}" for h in cols))
    for s, p in zip(sim, published, strict=True):
        ps, pp = per_page_us(_missing_only(s)), per_page_us(p)
        ks = ("wall_us", "sys_us", "idle_us", "user_us", "irq_softirq_us")
        cells = [f"{ps[k]:.3f} / {pp[k]:.3f}" for k in ks]
        print(f"{s['mode']:<14}" + "".join(f"{c:>18}" for c in cells))
    ss, sp = offload_saving_per_page_us(by_mode), offload_saving_per_page_us(pub)
    print(f"kernel CPU saved by offload per page: idle {ss['idle']:.3f} / {sp['idle']:.3f} us, "
          f"busy {ss['busy']:.3f} / {sp['busy']:.3f} us")  # fmt: skip
    print("\n90% interval of one run (priors' ranges, stage-1 errors, run-to-run noise)")
    for s in sim:
        iv = "  ".join(f"{k} {_fmt_range(k, v)}" for k, v in s["interval"].items())
        print(f"{s['mode']:<14}{iv}")
    print("\nwhat each predicted row depends on most (change at the low / high end of a source)")
    cols = [k for k in spread["sensitivity"][0] if isinstance(spread["sensitivity"][0][k], list)]
    print(f"{'source':<48}" + "".join(f"{c:>22}" for c in cols))
    for e in spread["sensitivity"][:8]:
        cells = [f"{e[c][0]:+.2f} / {e[c][1]:+.2f}" for c in cols]
        print(f"{e['source']:<48}" + "".join(f"{c:>22}" for c in cells))
    print("\nkernel CPU per migrated page by the function that pays it, us (simulated)")
    print(f"{'':<48}" + "".join(f"{m:>15}" for m in parts))
    for name in parts["baseline"]:
        print(f"{name:<48}" + "".join(f"{parts[m][name]:>15.4f}" for m in parts))
    return 0


def _fmt_range(metric: str, v: list[float]) -> str:
    if metric.endswith("_pct"):
        return f"[{v[0]:.2f}, {v[1]:.2f}]%"
    if metric == "hog_iterations":
        return f"[{v[0] / 1e9:.1f}e9, {v[1] / 1e9:.1f}e9]"
    return f"[{v[0]:.0f}, {v[1]:.0f}]"


def _hog_per_user_s(row: dict) -> float:
    """Hog iterations per second of user time of a busy row (its only user task is the hog):
    constant in the model (sched.hog_clock_ghz x hog_iters_per_cycle); in the published rows
    the check that the iterations follow the hog's CPU time."""
    return row["hog_iterations"] / (row["user_pct"] / 100 * row["wall_ms"] / 1e3)


def _with_missing_share(row: dict) -> dict:
    """A published row with the share /proc/stat gives none of user, system and idle (the
    irq + softirq columns the reply did not print), in points."""
    return {**row, "irq_softirq_pct": 100.0 - row["user_pct"] - row["sys_pct"] - row["idle_pct"]}


def _missing_only(row: dict) -> dict:
    """A row whose share none of user, system and idle take is given as the published rows
    give it (irq_softirq_pct: 100 - user - sys - idle), so that per_page_us compares like with
    like: the simulated idle CPU's unaccounted idle-task time is in it, as in /proc/stat."""
    if "irq_softirq_pct" in row:
        return row
    rest = {k: v for k, v in row.items() if k not in ("irq_pct", "softirq_pct")}
    return _with_missing_share(rest)


def _parts_per_page(result) -> dict[str, float]:
    """CPU per migrated page (us) of a result by kernel function, with the total."""
    pages = max(result.pages_migrated, 1)
    parts = {k: v * 1e6 / pages for k, v in result.cost.work_s.items()}
    parts["total kernel CPU of compaction"] = sum(parts.values())
    return parts
