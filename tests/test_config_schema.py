"""Bad configuration: each class of wrong value stops snakemake before any job, with a message
naming the key, and leaves every file under results/ as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pipeline_util import copy_workflow, edit, snakemake, snapshot

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


# Three classes through the real snakemake (a schema error, a check past the schema, one against
# the platform); every other bad value runs in-process in tests/test_bad_inputs.py, through the
# same migsim.pipeline.validate_config that the workflow runs.
CASES = [
    # (dotted key, new value or "DELETE", text the message must contain)
    ("throughput.modes", ["baseline", "dma", "turbo"], "throughput.modes[2]"),
    ("throughput.total_bytes", "1000K", "throughput.total_bytes"),  # not a multiple of 16K
    ("throughput.channels", [1, 64], "throughput.channels[1]: must be a whole number in 1..16"),
]


@pytest.mark.parametrize(
    ("key", "value", "message"), CASES, ids=[c[0] + "=" + str(c[1]) for c in CASES]
)
def test_bad_config_file_stops_before_any_job(work, key, value, message):
    cfg_path = work / "config" / "config.yaml"
    good = cfg_path.read_text()
    config = yaml.safe_load(good)
    bad = edit(config, key, delete=True) if value == "DELETE" else edit(config, key, value)
    before = snapshot(work / "results")
    cfg_path.write_text(yaml.safe_dump(bad))
    try:
        proc = snakemake(work, "--cores", "1", check=False)
    finally:
        cfg_path.write_text(good)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in out, out[-3000:]
    assert "Job stats" not in out and "rule throughput" not in out  # no job was scheduled
    assert snapshot(work / "results") == before


def test_bad_values_on_the_command_line(work):
    before = snapshot(work / "results")
    proc = snakemake(work, "--cores", "1", "--config", "seed=-3", check=False)
    assert proc.returncode != 0 and "config: seed: -3 is less than the minimum of 0" in proc.stderr
    proc = snakemake(work, "--cores", "1", "--config", "throughput={channels: [4, 0]}", check=False)
    assert proc.returncode != 0 and "config: throughput.channels[1]" in proc.stderr
    assert snapshot(work / "results") == before


def test_bad_configfile(work, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("throughput:\n  modes: [baseline, gpu]\n")
    before = snapshot(work / "results")
    proc = snakemake(work, "--cores", "1", "--configfile", str(bad), check=False)
    assert proc.returncode != 0 and "throughput.modes[1]: 'gpu' is not one of" in proc.stderr
    assert snapshot(work / "results") == before


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
