"""`migsim throughput` and `migsim reproduce throughput`."""

from __future__ import annotations

import argparse
import os

from migsim import limits
from migsim.cli.args import (
    check_platform_count,
    choice,
    existing_file,
    folio_size_arg,
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
from migsim.units import HPAGE_PUD_NR, PAGE_SIZE, format_size, parse_size
from migsim.versions import FALLBACKS, PLACEMENTS, RFCS

MODES = ("baseline", "dma", "mt")
REFERENCE_THROUGHPUT = os.path.join(REFERENCE_DIR, "move_pages_throughput.csv")


def batch_limit_arg(text: str) -> int:
    """--batch-limit: a plain number is base pages (NR_MAX_BATCHED_MIGRATION), a size with a
    suffix (2M, 1G) is converted to base pages; limits.BATCH_LIMIT."""
    name = "--batch-limit"
    if text.strip().lstrip("-").isdigit():
        return limit_arg(limits.BATCH_LIMIT, name)(text)
    try:
        nbytes = parse_size(text, name=name)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{name}: must be a number of base pages or a size such as 2M, got {text!r}"
        ) from None
    if nbytes % PAGE_SIZE:
        raise argparse.ArgumentTypeError(
            f"{name}: must be a whole number of 4K pages, got {text!r}"
        )
    try:
        return limits.BATCH_LIMIT.check(nbytes // PAGE_SIZE, name)
    except limits.LimitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub) -> None:
    """Add the throughput sub-command."""
    t = sub.add_parser("throughput", help=command_help("throughput"))
    t.add_argument("--mode", type=choice(MODES), default="baseline", help=" | ".join(MODES))
    t.add_argument("--folio-size", type=folio_size_arg(), default=4096,
                   help=f"one of {', '.join(limits.FOLIO_SIZE_LABELS)} (default 4K)")  # fmt: skip
    t.add_argument("--channels", type=whole_number("--channels"), default=None,
                   help="DMA channels (--mode dma; 1 up to the platform's, default 1)")  # fmt: skip
    t.add_argument("--threads", type=whole_number("--threads"), default=None,
                   help="copy threads (--mode mt; 1 up to the platform's, default 4)")  # fmt: skip
    t.add_argument("--total-bytes", type=size_limit_arg(limits.TOTAL_BYTES, "--total-bytes"),
                   default=1 << 30, help="bytes moved per trial, 4K..1T (default 1G)")  # fmt: skip
    t.add_argument(
        "--batch-limit", type=batch_limit_arg, default=HPAGE_PUD_NR,
        help="NR_MAX_BATCHED_MIGRATION in base pages, or a size such as 2M (default 1G worth)",
    )  # fmt: skip
    t.add_argument("--fail-rate", type=limit_arg(limits.FAIL_RATE, "--fail-rate"), default=None,
                   help="DMA descriptor failure probability in [0, 1] (--mode dma)")  # fmt: skip
    t.add_argument(
        "--fallback", type=choice(FALLBACKS), default=None,
        help="after a failed offload copy by CPU the whole batch (v4) or only the failed folios "
        "(v6); default: the version's own",
    )  # fmt: skip
    t.add_argument("--rfc", type=choice(RFCS), default="v4",
                   help="series version whose dcbm/mtcopy code runs: v2 | v3 | v4 | v6")  # fmt: skip
    t.add_argument("--placement", type=choice(PLACEMENTS), default="spread",
                   help="mt copy threads: spread over the CCDs or fill one CCD first")  # fmt: skip
    t.add_argument("--trials", type=limit_arg(limits.TRIALS, "--trials"), default=5)
    t.add_argument("--seed", type=seed_arg(), default=1)
    platform_arg(t)
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=cmd_throughput)


def register_reproduce(rsub) -> None:
    """Add ``migsim reproduce throughput`` and ``migsim reproduce all`` (the whole series)
    (declared by migsim.studies.EXPERIMENTS, whose reproduce field names this module)."""
    r = rsub.add_parser("throughput", help="the RFC's move_pages throughput table")
    platform_arg(r)
    r.add_argument("--reference", type=existing_file("--reference"), default=REFERENCE_THROUGHPUT)
    r.add_argument("--trials", type=limit_arg(limits.TRIALS, "--trials"), default=5)
    r.add_argument("--seed", type=seed_arg(), default=1)
    r.add_argument("--rfc", type=choice(RFCS), default="v4", help="v2 | v3 | v4 | v6")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_reproduce)

    a = rsub.add_parser(
        "all", help="every published throughput number of the series beside its simulation"
    )
    platform_arg(a)
    a.add_argument("--reference-dir", type=path_arg, default=REFERENCE_DIR)
    a.add_argument("--trials", type=limit_arg(limits.TRIALS, "--trials"), default=5)
    a.add_argument("--seed", type=seed_arg(), default=1)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_reproduce_all)


def interval_fields(platform, result) -> dict:
    """`lo`/`hi` (GB/s): the 90% interval of a measured mean of the result's trial count, and
    the log-scale sd of its parts (migsim.calibrate.intervals)."""
    from migsim.calibrate.intervals import result_interval

    iv = result_interval(platform, result)
    return {"lo": iv.lo, "hi": iv.hi, "interval_sd_log": iv.parts}


def check_throughput_args(args, platform) -> None:
    """Checks past parsing, before any work: arguments that the mode ignores, counts the
    platform narrows, the total against the folio size, memory. Raises LimitError naming
    the flag."""
    only_with("--channels", args.channels is not None, args.mode == "dma", "--mode dma")
    only_with("--threads", args.threads is not None, args.mode == "mt", "--mode mt")
    only_with("--fail-rate", args.fail_rate is not None, args.mode == "dma", "--mode dma")
    only_with("--fallback", args.fallback is not None, args.mode == "dma", "--mode dma")
    check_platform_count(args.channels, "--channels", limits.CHANNELS,
                         platform.dma.max_channels_count, platform.name)  # fmt: skip
    check_platform_count(args.threads, "--threads", limits.THREADS,
                         platform.mt.max_threads_count, platform.name)  # fmt: skip
    if args.total_bytes % args.folio_size:
        raise limits.LimitError(
            f"--total-bytes: must be a whole number of --folio-size "
            f"({format_size(args.folio_size)}) folios, got {format_size(args.total_bytes)}"
        )
    limits.check_memory(
        limits.throughput_memory(args.total_bytes, args.folio_size, args.batch_limit, args.trials),
        "--total-bytes",
        f"moving {format_size(args.total_bytes)} of {format_size(args.folio_size)} folios in "
        f"batches of {args.batch_limit} base pages (--batch-limit), {args.trials} trial(s)",
    )


def cmd_throughput(args) -> int:
    from migsim.cost.platform import load_platform
    from migsim.studies.throughput import run_throughput

    platform = load_platform(args.platform)
    check_throughput_args(args, platform)
    res = run_throughput(
        platform, mode=args.mode, folio_size=args.folio_size, channels=args.channels,
        threads=args.threads, total_bytes=args.total_bytes, batch_limit=args.batch_limit,
        trials=args.trials, seed=args.seed, fail_rate=args.fail_rate or 0.0, rfc=args.rfc,
        fallback=args.fallback, placement=args.placement,
    )  # fmt: skip
    out = {
        "mode": res.mode,
        "folio_size": format_size(res.folio_bytes),
        "channels": res.channels,
        "threads": res.threads,
        "total_bytes": res.total_bytes,
        "batch_limit_pages": res.batch_limit,
        "trials": args.trials,
        "seed": args.seed,
        "platform": platform.name,
        "rfc": res.rfc,
        "placement": res.placement if res.mode == "mt" else None,
        "mean_gbps": res.mean_gbps,
        "sd_gbps": res.sd_gbps,
        **interval_fields(platform, res),
        "trial_gbps": res.gbps,
        "phases_s": res.phases(),
        "pages_migrated": res.trials[0].nr_pages,
        "dma_copies": [t.dma_copies for t in res.trials],
        "fallbacks": [t.fallbacks for t in res.trials],
        "vmstat": res.vmstat(),
        "first_folio_latency_us": res.first_folio_latency_us(),
    }
    if args.json:
        import json  # here: `--help` and a table print need none

        print(json.dumps(out))
        return 0
    what = {"dma": f"{res.channels} DMA channel(s)", "mt": f"{res.threads} copy thread(s)"}
    print(
        f"{format_size(res.total_bytes)} of {format_size(res.folio_bytes)} folios, "
        f"{args.mode} ({what.get(args.mode, 'serial CPU copy')}), {args.trials} trial(s), "
        f"batches of {res.batch_limit * PAGE_SIZE >> 10} KiB"
    )
    print(
        f"throughput: {res.mean_gbps:.2f} ± {res.sd_gbps:.2f} GB/s "
        f"(90% interval of a {args.trials}-trial mean: {out['lo']:.2f} .. {out['hi']:.2f})"
    )
    ph = res.phases()
    wall = ph["wall_s"]
    for k in ("call_s", "unmap_s", "flush_s", "copy_s", "move_s"):
        print(f"  {k[:-2]:<6} {ph[k] * 1e3:9.3f} ms  {100 * ph[k] / wall:5.1f}%")
    print(f"  CPU busy {ph['sys_s'] * 1e3:.3f} ms, CPU idle (waiting) {ph['idle_s'] * 1e3:.3f} ms")
    if args.mode == "dma":
        print(f"  dma copies {out['dma_copies'][0]}, CPU fallbacks {out['fallbacks'][0]}")
    return 0


def reproduce_rows(
    platform, reference: str | os.PathLike, trials: int, seed: int, rfc: str = "v4"
) -> list[dict]:
    """Simulate every published cell; one dict per cell with the published value beside it."""
    from migsim.calibrate.throughput import read_reference
    from migsim.studies.throughput import run_throughput

    rows = []
    for c in read_table("--reference", reference, read_reference):
        r = run_throughput(
            platform, mode=c.mode, folio_size=c.folio_bytes, channels=c.channels,
            trials=trials, seed=seed, rfc=rfc,
        )  # fmt: skip
        rows.append(
            {
                "mode": c.mode,
                "channels": c.channels,
                "folio_size": format_size(c.folio_bytes),
                "simulated_gbps": r.mean_gbps,
                "simulated_sd_gbps": r.sd_gbps,
                **interval_fields(platform, r),
                "published_gbps": c.gbps,
                "published_sd_gbps": c.sd_gbps,
                "error_pct": 100.0 * (r.mean_gbps / c.gbps - 1.0),
            }
        )
    return rows


def cmd_reproduce(args) -> int:
    from migsim.cost.platform import load_platform

    platform = load_platform(args.platform)
    rows = reproduce_rows(platform, args.reference, args.trials, args.seed, args.rfc)
    import numpy as np

    mape = float(np.mean([abs(r["error_pct"]) for r in rows]))
    if args.json:
        import json  # here: `--help` and a table print need none

        print(json.dumps({"platform": platform.name, "cells": rows, "mape_pct": mape}))
        return 0
    sizes = list(dict.fromkeys(r["folio_size"] for r in rows))
    keys = list(dict.fromkeys((r["mode"], r["channels"]) for r in rows))
    cell = {(r["mode"], r["channels"], r["folio_size"]): r for r in rows}
    w = 27
    print(f"move_pages throughput, GB/s: simulated ({platform.name}) | published | error")
    print(f"{'':12}" + "".join(f"{s:>{w}}" for s in sizes))
    for mode, ch in keys:
        label = "baseline" if mode == "baseline" else f"{mode} {ch:>2} ch"
        line = f"{label:12}"
        for s in sizes:
            r = cell[(mode, ch, s)]
            txt = (
                f"{r['simulated_gbps']:.2f}±{r['simulated_sd_gbps']:.2f} "
                f"{r['published_gbps']:.2f} {r['error_pct']:+5.1f}%"
            )
            line += f"{txt:>{w}}"
        print(line)
    print(f"mean absolute percentage error: {mape:.2f}% over {len(rows)} cells")
    return 0


def cmd_reproduce_all(args) -> int:
    from migsim.cost.platform import load_platform

    platform = load_platform(args.platform)
    if not args.reference_dir.is_dir():
        raise ValueError(f"--reference-dir: no such directory {args.reference_dir}")
    from migsim.studies.series import series_rows

    rows = series_rows(platform, args.reference_dir, args.trials, args.seed)
    if args.json:
        import json  # here: `--help` and a table print need none

        print(json.dumps({"cells": rows}))
        return 0
    print(
        f"every published throughput number of the series: simulated ({platform.name}) | published"
    )
    head = f"{'rfc':4} {'table':22} {'mode':8} {'k':>3} {'folio':>5} {'folios':>6} "
    print(head + f"{'sim':>7} {'lo':>7} {'hi':>7} {'pub':>7} {'err':>7}  fit  in")
    for r in rows:
        k = "" if r["channels_or_threads"] is None else r["channels_or_threads"]
        mode = r["mode"] if r["placement"] in (None, "spread") else f"{r['mode']}/fill"
        print(
            f"{r['rfc']:4} {r['table']:22} {mode:8} {k:>3} {r['folio_size']:>5} {r['folios']:>6} "
            f"{r['simulated_gbps']:7.2f} {r['lo']:7.2f} {r['hi']:7.2f} {r['published_gbps']:7.2f} "
            f"{r['error_pct']:+6.1f}%  {'fit' if r['fitted'] else 'pre'}  "
            f"{'yes' if r['inside'] else 'no'}"
        )
    for fitted in (True, False):
        sel = [r for r in rows if r["fitted"] is fitted]
        if sel:
            mape = sum(abs(r["error_pct"]) for r in sel) / len(sel)
            inside = sum(r["inside"] for r in sel) / len(sel)
            what = "fitted" if fitted else "predicted"
            print(
                f"{what}: {len(sel)} cells, MAPE {mape:.2f}%, {100 * inside:.0f}% inside the interval"
            )
    return 0
