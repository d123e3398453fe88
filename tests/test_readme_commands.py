"""Every command in the README runs (issue 16, item 9): the README's own examples never go
stale.

Each command line of a ``sh``/``bash`` block is run here: ``migsim`` commands in-process (the
optional parts in ``[...]`` included), ``migsim calibrate`` as ``--check`` (it must reproduce the
committed platform file byte for byte, without writing it), ``snakemake`` commands as a dry run
(``-n``: the configuration checks and the job plan, no job) in a copy of the workflow. The
commands that install (pip, apt-get), that are the test suite (pytest), or that touch the
running kernel (probes, the host twin: run by their own host-gated tests) are not run here; each
such kind is named below with where it runs.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from pipeline_util import ROOT, copy_workflow, snakemake

from migsim.cli import main

pytestmark = pytest.mark.slow

NOT_RUN_HERE = {
    "pip": "installation: .ci/run installs the package the same way",
    "apt-get": "installation: .ci/run installs the system packages",
    "pytest": "the test suite itself: .ci/run runs it",
    "python benchmarks/": "a benchmark (minutes of wall time, by hand)",
    "migsim probe": "touches the running kernel: tests/test_probe.py, host-gated",
    "migsim host": "touches the running kernel: the host tests, host-gated",
    "migsim calibrate --host": "probes the running kernel: tests/test_host_*.py, host-gated",
}


def readme_commands() -> list[str]:
    """Every command line of the README's shell blocks (comments and ``&&`` chains split)."""
    text = (ROOT / "README.md").read_text()
    out = []
    for lang, block in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        if lang not in ("sh", "bash", "shell"):
            continue
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if not line or line.startswith("#"):
                continue
            out += [part.strip() for part in line.split("&&")]
    return out


COMMANDS = readme_commands()


# the README's placeholders, and the input files its commands name (a real trace: the excerpt
# of one captured on this project's host, tests/test_tracefs.py; a simulated one: made here)
PLACEHOLDERS = {"N": "1000"}


def why_not_run(cmd: str) -> str | None:
    cmd = cmd.removeprefix("sudo ")
    return next((why for prefix, why in NOT_RUN_HERE.items() if cmd.startswith(prefix)), None)


def test_the_readme_has_commands_and_each_is_known():
    assert len(COMMANDS) >= 15
    for cmd in COMMANDS:
        assert why_not_run(cmd) or cmd.split()[0] in ("migsim", "snakemake"), cmd


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, bytes]:
    """The files the README's commands read: real.trace and run.trace."""
    from test_tracefs import REAL_618

    d = tmp_path_factory.mktemp("readme_inputs")
    sim = ["compaction", "--node-size", "64M", "--allocations", "24", "--trace", "run.trace"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        assert main(sim) == 0
    return {"real.trace": REAL_618.encode(), "run.trace": (d / "run.trace").read_bytes()}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = copy_workflow(tmp_path_factory.mktemp("readme"), with_src=False)
    # the README's `--configfile my.yaml --replace-workflow-config`: a whole configuration
    (work / "my.yaml").write_text((work / "config" / "config.yaml").read_text())
    return work


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c.startswith("migsim")])
def test_migsim_command(cmd, inputs, tmp_path, monkeypatch, capsys, reference_fit):
    if why_not_run(cmd):
        pytest.skip(why_not_run(cmd))
    argv = shlex.split(cmd.replace("[", " ").replace("]", " "))[1:]
    argv = [PLACEHOLDERS.get(a, a) for a in argv]
    for name, data in inputs.items():
        (tmp_path / name).write_bytes(data)
    if argv[0] == "calibrate":
        argv.append("--check")  # reproduce the committed files, never write them
    monkeypatch.chdir(tmp_path)
    rc = main(argv)
    out = capsys.readouterr()
    assert rc == 0, out.err + out.out[-2000:]
    assert out.err.strip() == "" or "warning" not in out.err.lower(), out.err


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c.startswith("snakemake")])
def test_snakemake_command(cmd, work):
    argv = shlex.split(cmd)[1:]
    proc = snakemake(work, *argv, "-n", check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
