"""The `migsim` command line: one sub-command module per job (cli/*.py), registered here;
`migsim reproduce TABLE` has one sub-command per published experiment that declares one
(``migsim.studies.EXPERIMENTS``)."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Sequence

from migsim import __version__
from migsim.cli.args import OneLineParser
from migsim.cli.commands import COMMANDS


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser. Without `argv`, every sub-command is registered in full; with
    it, only the sub-command `argv` selects (its module imported, the others listed by name
    and one-line help from migsim.cli.commands, as --help shows them), so that
    ``migsim <command>`` imports nothing another command needs. Both parsers give the
    same help, errors and exit codes for that `argv`."""
    chosen = None if argv is None else selected_command(argv)
    parser = OneLineParser(
        prog="migsim",
        description="Simulate Linux page migration and compaction (batched copy, DMA offload).",
    )
    parser.add_argument("--version", action="version", version=f"migsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    registered: set[str] = set()
    for name, (module, text) in COMMANDS.items():
        if argv is not None and COMMANDS.get(chosen, ("",))[0] != module:
            sub.add_parser(name, help=text)  # listed only: never run in this process
        elif name == "reproduce":
            reproduce = sub.add_parser(name, help=text)
            rsub = reproduce.add_subparsers(dest="table", required=True, metavar="TABLE")
            for rmodule in _reproduce_modules():
                rmodule.register_reproduce(rsub)
        elif module not in registered:  # registers all of its commands (trace: trace, compare)
            importlib.import_module(module).register(sub)
            registered.add(module)
    parser.set_defaults(_flags=_option_strings(parser))
    return parser


def selected_command(argv: Sequence[str]) -> str | None:
    """The sub-command argparse will run for `argv`: its first argument that is not an
    option (the top-level parser's options, -h and --version, take no value); None when
    there is none."""
    for arg in argv:
        if arg != "--" and not arg.startswith("-"):
            return arg
    return None


def _option_strings(parser: argparse.ArgumentParser) -> frozenset[str]:
    """Every option string of `parser` and of its sub-command parsers."""
    out: set[str] = set()
    for action in parser._actions:
        out.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= _option_strings(sub)
    return frozenset(out)


def error_line(exc: BaseException, flags: frozenset[str] = frozenset()) -> str:
    """One line for a bad value found past parsing: a message that starts with an engine
    argument's name (``fail_rate: ...``) names the flag instead (``--fail-rate: ...``)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    m = re.match(r"^([a-z][a-z0-9_]*): ", text)
    if m and f"--{m.group(1).replace('_', '-')}" in flags:
        text = f"--{m.group(1).replace('_', '-')}{text[m.end(1) :]}"
    return text


def _reproduce_modules():
    """The command-line modules of the published experiments that reproduce a table
    (``migsim.studies.EXPERIMENTS``, field ``reproduce``), in their order."""
    from migsim.studies import EXPERIMENTS

    names = dict.fromkeys(e.reproduce for e in EXPERIMENTS if e.reproduce)
    return [importlib.import_module(name) for name in names]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return rc
    except BrokenPipeError:  # the reader went away (`migsim ... | head`): stop quietly
        # point stdout at /dev/null so the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it
    except (ValueError, OSError, MemoryError) as exc:  # bad values past parsing, bad files
        command = " ".join(filter(None, (args.command, getattr(args, "table", None))))
        print(f"migsim {command}: error: {error_line(exc, args._flags)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
