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
