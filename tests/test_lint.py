"""Lint stays clean: ruff check, ruff format --check (Python) and snakefmt --check (the
Snakefile and workflow/). The tools come with `pip install -e '.[dev]'`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_util import in_ci

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> list[str]:
    exe = shutil.which(name) or (Path(sys.executable).parent / name)
    if not Path(exe).exists():
        reason = f"{name} is not installed (pip install -e '.[dev]')"
        if in_ci():
            pytest.fail(reason)
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return [str(exe)]


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}"


def test_ruff_check():
    _run([*_tool("ruff"), "check", "."])


def test_ruff_format():
    _run([*_tool("ruff"), "format", "--check", "."])


def test_snakefmt():
    _run([*_tool("snakefmt"), "--check", "Snakefile", "workflow"])
