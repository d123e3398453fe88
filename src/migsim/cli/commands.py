"""The sub-commands of `migsim`, in the order ``migsim --help`` lists them: each one's
one-line help and the command-line module that registers it (``register(sub)``). `migsim
--help` is written from this table without importing any of those modules, and `migsim
<command>` imports only the module of the command it runs (migsim.cli.build_parser).
A module that registers two commands (trace: trace and compare) has them adjacent here."""

from __future__ import annotations

# name: (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "reproduce": (
        "migsim.cli",
        "rerun a published table and print it beside the simulated one",
    ),
    "throughput": (
        "migsim.cli.throughput",
        "simulate move_pages() of folios between two nodes",
    ),
    "compaction": (
        "migsim.cli.compaction",
        "simulate order-9 allocations through direct compaction",
    ),
    "calibrate": (
        "migsim.cli.calibrate",
        "fit a platform's parameters: stage 1 on the throughput table, stage 2 on the "
        "baseline compaction row",
    ),
    "probe": (
        "migsim.cli.probe",
        "measure this machine: copy bandwidth, real compaction",
    ),
    "trace": (
        "migsim.cli.trace",
        "read tracepoint events of compaction and migration",
    ),
    "compare": (
        "migsim.cli.trace",
        "an mmtests-style report of two or more runs: real and simulated traces, run files",
    ),
    "host": (
        "migsim.cli.host",
        "digital twin of this machine's memory (snapshot, twin)",
    ),
}


def command_help(name: str) -> str:
    """The one-line help of sub-command `name` (as ``migsim --help`` lists it)."""
    return COMMANDS[name][1]
