"""`migsim trace import` and `migsim compare`: real traces read back, real and simulated runs
side by side."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from migsim.cli.commands import command_help


def register(sub) -> None:
    """Add `migsim trace import` and `migsim compare`."""
    t = sub.add_parser("trace", help=command_help("trace"))
    tsub = t.add_subparsers(dest="trace", required=True, metavar="ACTION")
    i = tsub.add_parser(
        "import", help="read a tracefs `trace` file or `perf script` output into Parquet"
    )
    i.add_argument("file", type=Path, help="the trace text")
    i.add_argument("--out", type=Path, default=None, help="Parquet file of the events")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=cmd_import)

    c = sub.add_parser("compare", help=command_help("compare"))
    c.add_argument("files", nargs="+", type=Path,
                   help="REAL SIM ...: trace text (tracefs or perf script), trace-event Parquet, "
                   "or compaction run Parquet (one column per mode); the first is the baseline")  # fmt: skip
    c.add_argument("--names", type=lambda t: t.split(","), default=None,
                   help="column names, comma separated (default: file stems or modes)")  # fmt: skip
    c.add_argument("--md", type=Path, default=None, help="write the report as Markdown")
    c.add_argument("--text", type=Path, default=None, help="write the report as text")
    c.add_argument("--figure", type=Path, default=None,
                   help="write the traces side by side as STEM.html/.svg/.png (traces only)")  # fmt: skip
    c.add_argument("--title", default="migsim compare", help="report title")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_compare)


def register_probe(psub) -> None:
    """Add `migsim probe trace -- COMMAND` to the probe sub-commands."""
    import argparse

    from migsim.cli.args import int_range

    p = psub.add_parser(
        "trace", help="trace compaction and migration while COMMAND runs (root, tracefs)"
    )
    p.add_argument("--out", type=Path, default=Path("trace.txt"),
                   help="trace text file (default trace.txt); vmstat deltas go beside it "
                   "as FILE.vmstat.json")  # fmt: skip
    p.add_argument("--buffer-kb", type=int_range(64, 1 << 22), default=65536,
                   help="ring buffer per CPU, KiB (default 65536)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("traced", nargs=argparse.REMAINDER, metavar="COMMAND",
                   help="-- COMMAND ARGS: what to trace (e.g. sh -c 'echo 1 > "
                   "/proc/sys/vm/compact_memory')")  # fmt: skip
    p.set_defaults(func=cmd_probe_trace)


def cmd_probe_trace(args) -> int:
    from migsim.atomic import atomic_write_text
    from migsim.cli.args import EXIT_UNAVAILABLE
    from migsim.formats.trace import parse_trace, vmstat_from_events
    from migsim.host.tracefs import TraceUnavailable, capture

    command = args.traced[1:] if args.traced[:1] == ["--"] else args.traced
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
    from migsim.formats.trace import TRACE_EVENTS, read_trace, summarise_events, vmstat_from_events
    from migsim.output.tables import write_parquet

    path = _existing(args.file, "FILE")
    try:
        imp = read_trace(path)
    except ValueError as exc:  # empty, binary or not a trace: one line naming the argument
        raise ValueError(f"FILE: {exc}") from None
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


def cmd_compare(args) -> int:
    from migsim.atomic import atomic_write_text
    from migsim.formats.mmtests import format_markdown, format_text, report_rows
    from migsim.studies.kernel_formats import compare, compare_figure

    for f in args.files:
        _existing(f, "FILE")
    if len(args.files) < 2 and not str(args.files[0]).endswith(".parquet"):
        raise ValueError("FILE: give two or more files to compare (REAL SIM ...)")
    if args.names is not None and len(args.names) != len(args.files):
        raise ValueError(f"--names: give {len(args.files)} names, got {len(args.names)}")
    stats = compare(args.files, args.names)
    if len(stats) < 2:
        raise ValueError("FILE: the files hold fewer than two runs to compare")
    text = format_text(stats, args.title)
    if args.text is not None:
        atomic_write_text(args.text, text)
    if args.md is not None:
        atomic_write_text(args.md, format_markdown(stats, args.title))
    if args.figure is not None:
        if any(str(f).endswith(".parquet") and _is_runs(f) for f in args.files):
            raise ValueError("--figure: traces only (text or trace-event Parquet)")
        names = args.names or [r.name for r in stats]
        compare_figure(args.files, names, args.figure)
    if args.json:
        rows = [{"stat": r.label, "metric": r.metric, "values": r.values, "pct": r.pcts}
                for r in report_rows(stats)]  # fmt: skip
        print(json.dumps({"runs": [r.name for r in stats], "rows": rows,
                          "ops": {r.name: r.ops for r in stats}}))  # fmt: skip
    else:
        print(text, end="")
    return 0


def _is_runs(path: Path) -> bool:
    import pyarrow.parquet as pq

    return "alloc_latency_us" in pq.read_schema(path).names
