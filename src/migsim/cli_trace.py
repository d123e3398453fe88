"""`migsim trace import` and `migsim compare`: real traces read back, real and simulated runs
side by side."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub, rsub) -> None:
    """Add `migsim trace import` and `migsim compare`."""
    t = sub.add_parser("trace", help="read tracepoint events of compaction and migration")
    tsub = t.add_subparsers(dest="trace", required=True, metavar="ACTION")
    i = tsub.add_parser(
        "import", help="read a tracefs `trace` file or `perf script` output into Parquet"
    )
    i.add_argument("file", type=Path, help="the trace text")
    i.add_argument("--out", type=Path, default=None, help="Parquet file of the events")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=cmd_import)


def register_probe(psub) -> None:
    """Add `migsim probe trace -- COMMAND` to the probe sub-commands."""
    import argparse

    from .cli_args import int_range

    p = psub.add_parser(
        "trace", help="trace compaction and migration while COMMAND runs (root, tracefs)"
    )
    p.add_argument("--out", type=Path, default=Path("trace.txt"),
                   help="trace text file (default trace.txt); vmstat deltas go beside it "
                   "as FILE.vmstat.json")  # fmt: skip
    p.add_argument("--buffer-kb", type=int_range(64, 1 << 22), default=65536,
                   help="ring buffer per CPU, KiB (default 65536)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="-- COMMAND ARGS: what to trace (e.g. sh -c 'echo 1 > "
                   "/proc/sys/vm/compact_memory')")  # fmt: skip
    p.set_defaults(func=cmd_probe_trace)


def cmd_probe_trace(args) -> int:
    from .atomic import atomic_write_text
    from .cli_probe import EXIT_UNAVAILABLE
    from .trace import parse_trace, vmstat_from_events
    from .tracefs import TraceUnavailable, capture

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise ValueError("COMMAND: give the command to trace after --")
    try:
        cap = capture(command, buffer_kb=args.buffer_kb)
    except TraceUnavailable as exc:
        print(f"migsim probe trace: unavailable on this machine: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    atomic_write_text(args.out, cap.text)
    delta = cap.vmstat_delta
    imp = parse_trace(cap.text.splitlines())
    out = {
        "trace": str(args.out),
        "command": command,
        "returncode": cap.returncode,
        "wall_s": cap.wall_s,
        "lost_events": cap.lost_events,
        "vmstat_delta": delta,
        "events": dict(sorted(imp.counts.items())),
        "unparsed": imp.unparsed,
        "vmstat_from_events": vmstat_from_events(imp.events),
    }
    atomic_write_text(f"{args.out}.vmstat.json", json.dumps(out, indent=1, sort_keys=True) + "\n")
    if args.json:
        print(json.dumps(out))
    else:
        got = out["vmstat_from_events"]
        print(f"{args.out}: {imp.events.height} events, {imp.unparsed} unparsed, "
              f"{cap.lost_events} lost; command exited {cap.returncode} after {cap.wall_s:.3f} s")  # fmt: skip
        for k in ("pgmigrate_success", "compact_isolated", "compact_migrate_scanned",
                  "compact_free_scanned"):  # fmt: skip
            print(f"  {k:<26} vmstat delta {delta[k]:>10}  from the events {got[k]:>10}")
    return 0 if cap.returncode == 0 else 1


def _existing(path: Path, flag: str) -> Path:
    if not path.is_file():
        raise ValueError(f"{flag}: no such file: {path}")
    return path


def cmd_import(args) -> int:
    from .tables import write_parquet
    from .trace import TRACE_EVENTS, read_trace, summarise_events, vmstat_from_events

    imp = read_trace(_existing(args.file, "FILE"))
    if args.out is not None:
        write_parquet(imp.events, args.out, TRACE_EVENTS, config_hash="", seed=0,
                      extra={"source": str(args.file), "unparsed": imp.unparsed})  # fmt: skip
    out = {
        "events": dict(sorted(imp.counts.items())),
        "unparsed": imp.unparsed,
        "skipped": dict(sorted(imp.skipped.items())),
        "vmstat": vmstat_from_events(imp.events),
        **summarise_events(imp.events),
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{args.file}: {imp.events.height} events, {imp.unparsed} unparsed lines")
    for name, n in out["events"].items():
        print(f"  {name:<40} {n:10d}")
    for name, n in out["skipped"].items():
        print(f"  skipped {name:<32} {n:10d}")
    for k, v in out["vmstat"].items():
        print(f"  {k:<40} {v:10d}")
    print(f"  migrate_pages() calls {out['migrate_calls']}, compactions {out['compactions']}")
    for line in imp.unparsed_examples:
        print(f"  unparsed: {line}", file=sys.stderr)
    return 0
