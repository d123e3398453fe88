"""argparse value types shared by the sub-commands: each rejects a bad value with a message
that states the allowed values (argparse prefixes it with the argument's name)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from .platform import DEFAULT_PLATFORM
from .units import folio_order, parse_size


def _strip(name: str, exc: ValueError) -> str:
    return str(exc).removeprefix(f"{name}: ")


def size_arg(name: str, folio: bool = False) -> Callable[[str], int]:
    """A size (4K, 2M, 1G or bytes); with `folio`, a power-of-two multiple of 4K."""

    def parse(text: str) -> int:
        try:
            nbytes = parse_size(text, name=name)
            if folio:
                folio_order(nbytes, name=name)
            return nbytes
        except ValueError as exc:
            raise argparse.ArgumentTypeError(_strip(name, exc)) from None

    return parse


def int_range(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """A whole number in [lo, hi] (no upper bound when `hi` is None)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if hi is None and v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        if hi is not None and not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be in {lo}..{hi}, got {v}")
        return v

    return parse


def fraction(lo_open: bool = False, hi_open: bool = True) -> Callable[[str], float]:
    """A number in [0, 1), or (0, 1) etc. as the open ends say."""
    lo_b, hi_b = ("(" if lo_open else "["), (")" if hi_open else "]")

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok_lo = v > 0.0 if lo_open else v >= 0.0
        ok_hi = v < 1.0 if hi_open else v <= 1.0
        if not (ok_lo and ok_hi):
            raise argparse.ArgumentTypeError(f"must be in {lo_b}0, 1{hi_b}, got {text}")
        return v

    return parse


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
    p.add_argument("--platform", type=Path, default=DEFAULT_PLATFORM, help="platform YAML file")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser that reports a bad value on one line naming the argument (no usage
    block) and exits 2; sub-command parsers inherit the class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")
