"""Bad configuration: each class of wrong value stops snakemake before any job, with a message
naming the key, and leaves every file under results/ as it was."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from pipeline_util import config_error, copy_workflow, edit, snakemake, snapshot

from migsim import pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = copy_workflow(tmp_path_factory.mktemp("schema"), with_src=False)
    # results of an earlier run that a bad configuration must not touch
    for rel in ("runs/throughput/baseline.parquet", "summary/throughput.parquet", "index.html"):
        p = work / "results" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"earlier result " + rel.encode())
    return work


# One class through the real snakemake (a schema error in the config file) and one bad
# command-line value (test_bad_values_on_the_command_line): they show that the workflow stops
# before any job and leaves results/ alone. The other classes (a check past the schema, one
# against the platform, command-line values, a bad --configfile) run in-process through the
# same steps (pipeline_util.config_error: Snakemake's own config parser and merge, then
# migsim.pipeline.coerce_config and validate_config, as workflow/rules/common.smk runs them),
# as does every other bad value in tests/test_bad_inputs.py.
CASES = [
    # (dotted key, new value or "DELETE", text the message must contain)
    ("throughput.modes", ["baseline", "dma", "turbo"], "throughput.modes[2]"),
    ("throughput.total_bytes", "1000K", "throughput.total_bytes"),  # not a multiple of 16K
    ("throughput.channels", [1, 64], "throughput.channels[1]: must be a whole number in 1..16"),
]
REAL = CASES[:1]


@contextmanager
def config_file(work: Path, key: str, value):
    """config/config.yaml of `work` with `key` set to `value` (or deleted), restored after."""
    cfg_path = work / "config" / "config.yaml"
    good = cfg_path.read_text()
    config = yaml.safe_load(good)
    bad = edit(config, key, delete=True) if value == "DELETE" else edit(config, key, value)
    cfg_path.write_text(yaml.safe_dump(bad))
    try:
        yield
    finally:
        cfg_path.write_text(good)


@pytest.mark.parametrize(
    ("key", "value", "message"), REAL, ids=[c[0] + "=" + str(c[1]) for c in REAL]
)
def test_bad_config_file_stops_before_any_job(work, key, value, message):
    before = snapshot(work / "results")
    with config_file(work, key, value):
        proc = snakemake(work, "--cores", "1", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in out, out[-3000:]
    assert "Job stats" not in out and "rule throughput" not in out  # no job was scheduled
    assert snapshot(work / "results") == before


@pytest.mark.parametrize(
    ("key", "value", "message"), CASES, ids=[c[0] + "=" + str(c[1]) for c in CASES]
)
def test_bad_config_file_stops_the_workflow_steps(work, key, value, message):
    with config_file(work, key, value):
        err = config_error(work)
    assert err is not None and "\n" not in err and err.startswith("config: "), err
    assert message in err, err


def test_the_workflow_steps_pass_the_shipped_configurations(work):
    """config_error is not an error for any input: the committed configurations pass."""
    assert config_error(work) is None
    assert config_error(work, configfiles=("config/smoke.yaml",), config=("seed=2",)) is None


def test_bad_values_on_the_command_line(work):
    before = snapshot(work / "results")
    proc = snakemake(work, "--cores", "1", "--config", "seed=-3", check=False)
    assert proc.returncode != 0 and "config: seed: -3 is less than the minimum of 0" in proc.stderr
    assert snapshot(work / "results") == before
    err = config_error(work, config=("seed=-3",))
    assert err is not None and "config: seed: -3 is less than the minimum of 0" in err, err
    err = config_error(work, config=("throughput={channels: [4, 0]}",))
    assert err is not None and "config: throughput.channels[1]" in err, err


def test_bad_configfile(work, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("throughput:\n  modes: [baseline, gpu]\n")
    err = config_error(work, configfiles=(str(bad),))
    assert err is not None and "throughput.modes[1]: 'gpu' is not one of" in err, err


def test_messages_are_one_line_and_name_the_key():
    from jsonschema import Draft202012Validator

    schema = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml").read_text()
    )
    errors = list(
        Draft202012Validator(schema).iter_errors(
            {
                "platform": "p.yaml",
                "seed": 1,
                "reference": {"throughput": "a", "compaction": "b"},
                "throughput": {"modes": ["dma"]},
                "fragmentation": {"node_bytes": "2G", "free_ratio": 0.5, "pattern": "zigzag"},
                "compaction": {},
            }
        )
    )
    lines = sorted(pipeline.explain_validation_error(e) for e in errors)
    assert all("\n" not in ln and ln.startswith("config: ") for ln in lines)
    assert any(ln.startswith("config: fragmentation.pattern: 'zigzag'") for ln in lines)
    assert any(ln.startswith("config: throughput.folio_sizes: missing") for ln in lines)
    assert any(ln.startswith("config: compaction.modes: missing") for ln in lines)


def test_values_from_the_command_line_are_coerced_by_the_schema():
    schema = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml").read_text()
    )
    got = pipeline.coerce_config(
        {
            "seed": "7",
            "throughput": {"channels": ["1", "16"], "fail_rate": "0.1", "modes": ["dma"]},
            "compaction": {"noise": "true"},
        },
        schema,
    )
    assert got == {
        "seed": 7,
        "throughput": {"channels": [1, 16], "fail_rate": 0.1, "modes": ["dma"]},
        "compaction": {"noise": True},
    }
    # anything that is not a number stays a string, for the schema to reject with the key
    assert pipeline.coerce_config({"seed": "seven"}, schema) == {"seed": "seven"}


def test_the_schema_reads_as_yaml_safe_load_reads_it(work):
    """pipeline.load_schema reads with libyaml's loader where there is one: the same document
    as PyYAML's pure-Python safe_load."""
    path = work / "workflow" / "schemas" / "config.schema.yaml"
    assert pipeline.load_schema(path) == yaml.safe_load(path.read_text())
