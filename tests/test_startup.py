"""Start-up: each command imports only what it uses. Building the whole `migsim` parser
(every `--help`) imports no numpy, polars, pyarrow, scipy or yaml; a compaction run and
`reproduce throughput` import no polars, pyarrow or scipy (scipy is imported inside a fit
only); a throughput row's pipeline job imports no polars or pandas; `import migsim` does not look its version up with importlib.metadata. Each case runs
in a fresh interpreter, since this test process has imported everything already."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import migsim
from migsim.cli import compaction as cli_compaction
from migsim.cli import probe as cli_probe
from migsim.host import probe
from migsim.kernel import compaction as engine
from migsim.kernel import fragment
from migsim.studies import compaction

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "polars", "pyarrow", "scipy", "yaml", "altair", "vl_convert", "rich", "pandas")


def imported_by(code: str) -> set[str]:
    """The HEAVY modules (and importlib.metadata) a fresh interpreter holds after `code`."""
    probe_code = (
        "import sys\n"
        f"{code}\n"
        f"names = {list(HEAVY)!r} + ['importlib.metadata']\n"
        "print('\\n' + __import__('json').dumps([m for m in names if m in sys.modules]))\n"
    )
    return set(json.loads(last_line_of(probe_code)))


def last_line_of(code: str) -> str:
    """The last line a fresh interpreter prints running `code` with this tree's engine."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_import_migsim_needs_no_metadata_lookup():
    assert imported_by("import migsim") == set()


def test_every_help_builds_the_parser_without_heavy_imports():
    assert imported_by("from migsim.cli import build_parser\nbuild_parser()") == set()


@pytest.mark.parametrize("command", [["--help"], ["compaction", "--help"], ["probe", "--help"]])
def test_help_exits_zero_without_heavy_imports(command):
    code = (
        "from migsim.cli import main\n"
        "try:\n"
        f"    main({command!r})\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
    )
    assert imported_by(code) == set()


def test_a_compaction_run_imports_numpy_and_yaml_only():
    code = (
        "from migsim.cli import main\n"
        "assert main(['compaction', '--node-size', '32M', '--allocations', '4', '--json']) == 0"
    )
    assert imported_by(code) == {"numpy", "yaml"}


def test_reproduce_throughput_imports_numpy_and_yaml_only():
    code = "from migsim.cli import main\nassert main(['reproduce', 'throughput', '--json']) == 0"
    assert imported_by(code) == {"numpy", "yaml"}


def test_a_throughput_rows_job_imports_no_polars_or_pandas(tmp_path):
    """The pipeline's throughput job (workflow/rules/throughput.smk) writes its run file with
    PyArrow alone; PyArrow's first pa.array() would import pandas (about 0.15 CPU s)."""
    code = (
        "import yaml\n"
        "import migsim.pipeline as mp\n"
        "cfg = yaml.safe_load(open('config/config.yaml'))\n"
        "cfg.update(mp.coerce_config(cfg, mp.load_schema('workflow/schemas/config.schema.yaml')))\n"
        "row = mp.throughput_rows(cfg)[1]\n"
        "mp.simulate_throughput_row(cfg['platform'], mp.throughput_params(cfg, row), "
        f"{str(tmp_path / 'run.parquet')!r})\n"
    )
    assert imported_by(code) == {"numpy", "yaml", "pyarrow"}
    assert (tmp_path / "run.parquet").stat().st_size > 0


def test_the_cli_copies_of_the_choices_are_the_engines():
    assert cli_probe.COPY_SIZES == probe.COPY_SIZES
    assert cli_probe.ACCESS_ORDERS == probe.ACCESS_ORDERS
    assert cli_probe.PATTERNS == fragment.PATTERNS == cli_compaction.PATTERNS
    assert cli_compaction.MODES == compaction.MODES
    assert cli_compaction.CAPTURE_CONTEXTS == engine.CAPTURE_CONTEXTS


def test_version_is_written_once():
    """pyproject.toml takes the version from migsim.__version__; the installed metadata (when
    the package is installed) says the same."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "migsim.__version__"
    try:
        installed = importlib.metadata.version("migsim")
    except importlib.metadata.PackageNotFoundError:
        return
    assert installed == migsim.__version__


def test_a_sub_command_imports_its_own_module_only():
    """`migsim compaction --help` builds the compaction parser alone: no other command's
    module, no cost model (the platform file's default path is a string, migsim.paths)."""
    code = (
        "import sys\n"
        "from migsim.cli import main\n"
        "try:\n"
        "    main(['compaction', '--help'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print('\\n' + ' '.join(sorted(m for m in sys.modules if m.startswith('migsim.'))))\n"
    )
    loaded = set(last_line_of(code).split())
    others = {f"migsim.cli.{m}" for m in ("throughput", "calibrate", "probe", "trace", "host")}
    assert "migsim.cli.compaction" in loaded
    assert not loaded & others, loaded & others
    assert not {m for m in loaded if m.startswith(("migsim.cost", "migsim.studies"))}


# what a user sees, run by run: the parser of one selected command against the full one
HELP_ARGVS = [
    [],
    ["--help"],
    ["bogus"],
    ["--bogus"],
    ["reproduce"],
    ["reproduce", "--help"],
    ["reproduce", "bogus"],
    ["reproduce", "throughput", "--help"],
    ["reproduce", "all", "--help"],
    ["reproduce", "compaction", "--help"],
    ["-h", "compaction"],
    ["--", "compaction", "--help"],
    ["compaction", "--mode", "xx"],
    ["compaction", "--bogus"],
    ["throughput", "--folio-size", "-4K"],
    *([name, "--help"] for name in ("throughput", "compaction", "calibrate", "probe")),
    *([name, "--help"] for name in ("trace", "compare", "host")),
    ["host", "twin", "--help"],
    ["probe", "copy", "--help"],
    ["trace", "import", "--help"],
]


@pytest.mark.parametrize("argv", HELP_ARGVS, ids=" ".join)
def test_the_selected_parser_answers_as_the_full_one(argv, capsys):
    from migsim.cli import build_parser

    answers = []
    for parser in (build_parser(), build_parser(argv)):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(argv)
        out, err = capsys.readouterr()
        answers.append((exc.value.code, out, err))
    assert answers[0] == answers[1]
    assert answers[0][1] or answers[0][2]  # it said something


def test_every_command_is_listed_in_the_table():
    """migsim.cli.commands lists every command the modules register, in their order."""
    from migsim.cli import build_parser
    from migsim.cli.commands import COMMANDS

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == list(COMMANDS)
    assert [a.help for a in sub._choices_actions] == [h for _, h in COMMANDS.values()]
