"""`migsim probe copy`, `compaction` and `move-pages-call`: measure this machine and its kernel.

Exit codes: 0 done, 2 bad argument (one line naming it), 3 the probe cannot run here (not
root, compact_memory not writable, ...; the reason is printed) -- callers such as the pipeline
skip the probe on 3.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from migsim.cli.args import EXIT_UNAVAILABLE, fraction, int_range, list_of, size_arg
from migsim.cli.commands import command_help
from migsim.units import format_size, parse_size

# the choices of migsim.host.probe and migsim.kernel.fragment, repeated here so that building the parser
# does not import them (polars, pyarrow, numpy); tests/test_startup.py keeps them equal
COPY_SIZES = ("4K", "8K", "16K", "32K", "64K", "128K", "256K", "512K", "1M", "2M")
ACCESS_ORDERS = ("in-order", "random")
PATTERNS = ("even", "random", "clustered")


def _copy_size(text: str) -> str:
    nbytes = parse_size(text)
    if nbytes % 4096 or nbytes & (nbytes - 1) or nbytes > 2 << 20:
        raise ValueError(text)
    return format_size(nbytes)


def register(sub) -> None:
    """Add `migsim probe copy`, `compaction` and `move-pages-call`."""
    p = sub.add_parser("probe", help=command_help("probe"))
    psub = p.add_subparsers(dest="probe", required=True, metavar="PROBE")

    c = psub.add_parser("copy", help="copy bandwidth per folio size (unprivileged)")
    c.add_argument(
        "--sizes", type=list_of(_copy_size, what="each must be a power of two from 4K to 2M"),
        default=list(COPY_SIZES), help="folio sizes, comma separated (default 4K..2M)",
    )  # fmt: skip
    c.add_argument(
        "--order", type=list_of(str, ACCESS_ORDERS), default=list(ACCESS_ORDERS),
        help="in-order, random or both (default both)",
    )  # fmt: skip
    c.add_argument(
        "--working-set", type=size_arg("--working-set"), default=1 << 30,
        help="source plus destination bytes (default 1G)",
    )  # fmt: skip
    c.add_argument("--repeats", type=int_range(1, 1000), default=5)
    c.add_argument("--seed", type=int_range(0, 2**63 - 1), default=1)
    c.add_argument("--out", type=Path, default=None, help="Parquet file to write")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_copy)

    k = psub.add_parser("compaction", help="real compaction via compact_memory (root)")
    k.add_argument(
        "--size", type=size_arg("--size"), default=1 << 30,
        help="region to fragment; never more than this nor 25%% of MemAvailable (default 1G)",
    )  # fmt: skip
    k.add_argument(
        "--ratios", type=list_of(fraction(lo_open=True), what="each must be a number in (0, 1)"), default=[0.25, 0.5, 0.75],
        help="fractions of each 2 MiB region freed, each in (0, 1) (default 0.25,0.5,0.75)",
    )  # fmt: skip
    k.add_argument(
        "--pattern", type=list_of(str, PATTERNS), default=["even"],
        help=f"fragmentation pattern(s): {', '.join(PATTERNS)} (default even)",
    )  # fmt: skip
    k.add_argument("--repeats", type=int_range(1, 1000), default=5)
    k.add_argument("--seed", type=int_range(0, 2**63 - 1), default=1)
    k.add_argument(
        "--node", type=int_range(0, 1023), default=None,
        help="compact one node (/sys/devices/system/node/nodeN/compact) instead of all",
    )  # fmt: skip
    k.add_argument("--out", type=Path, default=None, help="Parquet file to write")
    k.add_argument("--json", action="store_true", help="print one JSON object")
    k.set_defaults(func=cmd_compaction)

    m = psub.add_parser(
        "move-pages-call",
        help="wall time of a move_pages() call that migrates nothing (unprivileged)",
    )
    m.add_argument("--calls", type=int_range(1, 10**7), default=20000, help="calls per loop")
    m.add_argument("--repeats", type=int_range(1, 1000), default=5)
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=cmd_move_pages_call)

    from migsim.cli.trace import register_probe

    register_probe(psub)  # migsim probe trace -- COMMAND


def _write(df, out: Path | None, schema, params: dict, seed: int) -> None:
    if out is None:
        return
    from migsim.host.probe import host_platform_name
    from migsim.output.tables import write_parquet
    from migsim.pipeline import config_hash

    extra = {"probe_parameters": json.dumps(params, sort_keys=True), "host": host_platform_name()}
    write_parquet(df, out, schema, config_hash=config_hash(params), seed=seed, extra=extra)


def cmd_copy(args) -> int:
    from migsim.host.probe import COPY_RUNS, copy_summary, probe_copy

    params = {
        "sizes": args.sizes,
        "orders": args.order,
        "working_set": args.working_set,
        "repeats": args.repeats,
        "seed": args.seed,
    }
    df = probe_copy(args.sizes, args.order, args.working_set, args.repeats, args.seed)
    _write(df, args.out, COPY_RUNS, params, args.seed)
    summary = copy_summary(df)
    if args.json:
        print(json.dumps({"parameters": params, "summary": summary.to_dicts()}))
        return 0
    print(
        f"copy bandwidth, working set {format_size(args.working_set)} "
        f"(half source, half destination), median of {args.repeats}:"
    )
    print(f"{'size':>6} {'order':>9} {'GB/s':>8} {'min':>7} {'max':>7} {'us/folio':>10}")
    for r in summary.iter_rows(named=True):
        print(
            f"{r['folio_size']:>6} {r['access']:>9} {r['gbps_median']:8.2f} "
            f"{r['gbps_min']:7.2f} {r['gbps_max']:7.2f} {r['us_per_folio']:10.3f}"
        )
    if args.out:
        print(f"wrote {args.out}")
    return 0


def cmd_compaction(args) -> int:
    from migsim.host.probe import (
        HOST_COMPACTION_RUNS,
        ProbeUnavailable,
        check_size_cap,
        compaction_summary,
        probe_compaction,
    )

    check_size_cap(args.size, name="--size")

    params = {
        "size": args.size,
        "ratios": args.ratios,
        "patterns": args.pattern,
        "repeats": args.repeats,
        "seed": args.seed,
        "node": args.node,
    }
    progress = None if args.json else (lambda msg: print("  " + msg, flush=True))
    try:
        df = probe_compaction(
            args.size, args.ratios, args.pattern, args.repeats, args.seed, args.node,
            progress=progress,
        )  # fmt: skip
    except ProbeUnavailable as exc:
        print(f"migsim probe compaction: unavailable on this machine: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    _write(df, args.out, HOST_COMPACTION_RUNS, params, args.seed)
    summary = compaction_summary(df)
    if args.json:
        print(json.dumps({"parameters": params, "summary": summary.to_dicts()}))
        return 0
    print(
        f"compact_memory on a {format_size(args.size)} region, median [min, max] of "
        f"{args.repeats} run(s):"
    )
    print(
        f"{'pattern':>9} {'ratio':>6} {'pages/CPU-s [min, max]':>30} {'pages/s':>9} "
        f"{'pages migrated [min, max]':>27} {'wall ms':>8} {'sys %':>6}"
    )
    for r in summary.iter_rows(named=True):
        cpu = (
            f"{r['pages_per_cpu_s']:,.0f} [{r['pages_per_cpu_s_min']:,.0f}, "
            f"{r['pages_per_cpu_s_max']:,.0f}]"
        )
        pages = (
            f"{r['pages_migrated']:,.0f} [{r['pages_migrated_min']:,}, {r['pages_migrated_max']:,}]"
        )
        print(
            f"{r['pattern']:>9} {r['free_ratio']:6.2f} {cpu:>30} {r['pages_per_s']:9,.0f} "
            f"{pages:>27} {r['wall_ms']:8.1f} {r['sys_pct']:6.1f}"
        )
    print(
        "pages/CPU-s: pgmigrate_success per second of the compacting task's CPU time; "
        "pages/s: per second of wall time"
    )
    if args.out:
        print(f"wrote {args.out}")
    return 0


def cmd_move_pages_call(args) -> int:
    from migsim.host.probe import ProbeUnavailable, probe_move_pages_call

    try:
        r = probe_move_pages_call(args.calls, args.repeats)
    except ProbeUnavailable as exc:
        print(f"migsim probe move-pages-call: unavailable on this machine: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.json:
        print(json.dumps(r))
        return 0
    print(
        f"move_pages() of one resident page, {r['calls']} calls x {r['repeats']} repeats, "
        f"kernel {r['kernel']}, {r['online_cpus']} CPUs online, median [min, max]:"
    )
    print(f"  nodes NULL (do_pages_stat: status only)        {r['stat_us']:8.2f} us per call")
    print(
        f"  to its own node {r['node']} (do_pages_move, no copy)   {r['move_us']:8.2f} us per call"
    )
    print(
        f"  difference: lru_cache_disable/enable and one lookup {r['lru_cache_disable_us']:.2f} us "
        f"[{r['lru_cache_disable_us_min']:.2f}, {r['lru_cache_disable_us_max']:.2f}] "
        "(the per-call prior cpu.lru_cache_disable_us)"
    )
    return 0
