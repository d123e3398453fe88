"""argparse value types and checks shared by the sub-commands.

Error style (every sub-command): one line on stderr, ``migsim <command>: error: <flag>:
<what is allowed>, got <value>``, exit code 2, before any work. The types below raise
ArgumentTypeError with the flag's name in front (OneLineParser removes argparse's own
``argument <flag>:`` prefix, so the name appears once); checks that need more than one
argument or the platform run after parsing and raise ValueError (a LimitError) in the same
form, which ``migsim.cli.main`` prints. Ranges come from :mod:`migsim.limits`, the one
definition the engine and the workflow's schema also use.

For a new flag: ``p.add_argument("--x", type=limit_arg(limits.X, "--x"))``; a count the
platform narrows (channels, threads) takes ``type=whole_number("--x")`` and
:func:`check_platform_count` once the platform is loaded; a file takes
``type=existing_file("--x")`` and, for a table, :func:`read_table` to turn a malformed file
into one line.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from migsim.limits import (
    SEED,
    Limit,
    LimitError,
    SizeLimit,
    check_folio_size,
)
from migsim.paths import DEFAULT_PLATFORM_FILE
from migsim.units import parse_size

if TYPE_CHECKING:
    from pathlib import Path


def _strip(name: str, exc: ValueError) -> str:
    return str(exc).removeprefix(f"{name}: ")


def limit_arg(limit: Limit, name: str) -> Callable[[str], Any]:
    """A number within `limit` (a whole number when the limit says so)."""

    def parse(text: str) -> Any:
        try:
            value: Any = int(text) if limit.integer else float(text)
        except ValueError:
            try:
                value = float(text)  # "1e3" for a count, "nan": the check names the rule
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{name}: must be {limit.text()}, got {text!r}"
                ) from None
        try:
            return limit.check(value, name)
        except LimitError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def whole_number(name: str) -> Callable[[str], int]:
    """A whole number, range checked later (against the platform, check_platform_count)."""

    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name}: must be a whole number, got {text!r}"
            ) from None

    return parse


def size_limit_arg(limit: SizeLimit, name: str) -> Callable[[str], int]:
    """A size (4K, 2M, 1G or bytes) within `limit`; bytes."""

    def parse(text: str) -> int:
        try:
            return limit.parse(text, name)
        except LimitError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def folio_size_arg(name: str = "--folio-size") -> Callable[[str], int]:
    """A folio size the model migrates (limits.FOLIO_SIZES); bytes."""

    def parse(text: str) -> int:
        try:
            return check_folio_size(text, name)
        except LimitError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def existing_file(name: str) -> Callable[[str], Path]:
    """A path to a readable regular file (checked when the arguments are parsed; a default
    given as a string is checked the same way when the flag is not given)."""

    def parse(text: str) -> Path:
        p = path_arg(text)
        if not p.is_file():
            what = "is a directory" if p.is_dir() else "no such file"
            raise argparse.ArgumentTypeError(f"{name}: {what}: {text}")
        return p

    return parse


def path_arg(text: str) -> Path:
    """A path (``type=path_arg``, as ``type=Path``): pathlib is imported at parse time, not
    when the parser is built (`--help`)."""
    from pathlib import Path

    return Path(text)


def seed_arg(name: str = "--seed") -> Callable[[str], int]:
    """A seed, limits.SEED."""
    return limit_arg(SEED, name)


def check_platform_count(
    value: int | None, name: str, limit: Limit, top: int, platform_name: str
) -> int | None:
    """A channel or thread count within what the platform has (1..top); None passes."""
    if value is None:
        return None
    what = "DMA channels" if "chan" in name else "copy threads"
    return limit.check(value, name, hi=top, why=f"the {what} of platform {platform_name}")


def only_with(name: str, given: bool, allowed: bool, condition: str) -> None:
    """Refuse an argument given where it has no effect (`allowed` False)."""
    if given and not allowed:
        raise LimitError(f"{name}: only meaningful with {condition}")


def read_table(name: str, path: Path, reader: Callable[[Path], Any]) -> Any:
    """`reader(path)` with any failure of a malformed file turned into one line naming the
    argument (polars ComputeError, a missing column, a bad cell)."""
    try:
        return reader(path)
    except FileNotFoundError:
        raise LimitError(f"{name}: no such file: {path}") from None
    except Exception as exc:  # a malformed table: polars, KeyError, ValueError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LimitError(f"{name}: {path} is not a valid table ({first})") from None


# --- the older helpers, kept for the sub-commands that use them (now on top of limits) ------


def size_arg(name: str, folio: bool = False) -> Callable[[str], int]:
    """A size (4K, 2M, 1G or bytes); with `folio`, a folio size the model migrates."""
    if folio:
        return folio_size_arg(name)

    def parse(text: str) -> int:
        try:
            return parse_size(text, name=name)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{name}: {_strip(name, exc)}") from None

    return parse


def int_range(lo: int, hi: int | None = None, name: str = "") -> Callable[[str], int]:
    """A whole number in [lo, hi] (no upper bound when `hi` is None)."""
    limit = Limit("", lo, hi, integer=True)

    def parse(text: str) -> int:
        return limit_arg(limit, name)(text) if name else _unnamed(limit, text)

    return parse


def fraction(lo_open: bool = False, hi_open: bool = True) -> Callable[[str], float]:
    """A number in [0, 1), or (0, 1) etc. as the open ends say."""
    limit = Limit("", 0.0, 1.0, lo_open=lo_open, hi_open=hi_open)
    return lambda text: _unnamed(limit, text)


def _unnamed(limit: Limit, text: str) -> Any:
    try:
        return limit_arg(limit, "")(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(": ")) from None


def choice(allowed: tuple[str, ...]) -> Callable[[str], str]:
    """One of `allowed`."""

    def parse(text: str) -> str:
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(allowed)}; got {text!r}")
        return text

    return parse


def list_of(item: Callable[[str], object], allowed: tuple | None = None, what: str = "bad element"):
    """A comma-separated list; `item` converts one element (raising ValueError or
    ArgumentTypeError), `allowed` restricts the values."""

    def parse(text: str) -> list:
        out = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            try:
                v = item(part)
            except (ValueError, argparse.ArgumentTypeError):
                raise argparse.ArgumentTypeError(f"{what}, got {part!r}") from None
            if allowed is not None and v not in allowed:
                raise argparse.ArgumentTypeError(
                    f"{part!r} is not one of {', '.join(map(str, allowed))}"
                )
            out.append(v)
        if not out:
            raise argparse.ArgumentTypeError("empty list")
        return out

    return parse


def platform_arg(p: argparse.ArgumentParser) -> None:
    """The --platform option every simulating sub-command takes."""
    p.add_argument(
        "--platform", type=existing_file("--platform"), default=DEFAULT_PLATFORM_FILE,
        help="platform YAML file",
    )  # fmt: skip


# exit code of a command whose measurement this machine cannot make (no root, no tracefs)
EXIT_UNAVAILABLE = 3
_ARG_PREFIX = re.compile(r"^argument (\S+?)(?:/\S+)?: (.*)$", re.DOTALL)
_NUMBER_LIKE = re.compile(r"^-(\.?\d|inf|nan)", re.IGNORECASE)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser that reports a bad value on one line naming the argument once (no
    usage block) and exits 2; sub-command parsers inherit the class. A value that starts
    like a negative number (``--folio-size -4K``) is taken as the option's value, so the
    value's own check answers instead of argparse's "expected one argument"."""

    def error(self, message: str):
        m = _ARG_PREFIX.match(message)
        if m:
            name, rest = m.groups()
            message = rest if rest.startswith(f"{name}:") else f"{name}: {rest}"
        message = " ".join(message.split())  # one line
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _parse_optional(self, arg_string):
        if _NUMBER_LIKE.match(arg_string):
            return None
        return super()._parse_optional(arg_string)


__all__ = [
    "OneLineParser",
    "check_platform_count",
    "choice",
    "existing_file",
    "folio_size_arg",
    "fraction",
    "int_range",
    "limit_arg",
    "list_of",
    "only_with",
    "path_arg",
    "platform_arg",
    "read_table",
    "seed_arg",
    "size_arg",
    "size_limit_arg",
    "whole_number",
]
