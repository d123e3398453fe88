"""A study added as a user adds one: a module outside migsim (tests/plugin_study.py), named in
the configuration (``study_modules``) with its section ``whatif.plugin_study``, run through the
real snakemake: its summary Parquet (schema, metadata, the engine's numbers), its figure in
three formats, its table, findings and own page, and its section on results/whatif/index.html."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
import yaml
from pipeline_util import (
    copy_workflow,
    env_for,
    run_snakemake,
    seed_vega_bundle,
    smoke_run,
    study_summary,
)
from test_figures import check_figure_files

from migsim.output.tables import read_metadata
from migsim.studies import registry, study_files

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
PLUGIN = {
    "study_modules": ["plugin_study"],
    # the built-in studies off: this test is about the plug-in
    "whatif": {
        **{name: {"enabled": False} for name in registry()},
        "plugin_study": {"channels": [1, 4], "total_bytes": "64M"},
    },
}


def run(work: Path, *args: str) -> subprocess.CompletedProcess:
    env = env_for(work)
    env["PYTHONPATH"] = os.pathsep.join([str(work / "plugins"), env["PYTHONPATH"]])
    return run_snakemake(work, *args, env=env)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("plugin") / "w")
    seed_vega_bundle(smoke_run(tmp_path_factory), work)  # the smoke run's: not built again
    (work / "plugins").mkdir()
    shutil.copy2(HERE / "plugin_study.py", work / "plugins" / "plugin_study.py")
    (work / "plugin.yaml").write_text(yaml.safe_dump(PLUGIN))
    proc = run(
        work,
        "results/whatif/index.html",
        "--cores",
        "2",
        "--configfile",
        "config/smoke.yaml",
        "plugin.yaml",
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    return work


def test_plugin_study_parquet_is_the_engines_numbers(work, monkeypatch):
    monkeypatch.syspath_prepend(str(work / "plugins"))
    import plugin_study

    from migsim.cost.platform import load_platform
    from migsim.studies import study_params

    summary = str(study_summary(work / "results", "plugin_study"))
    files = study_files(str(work / "results"), "plugin_study", summary)
    plugin_study.SCHEMA.check_file(files["parquet"])
    meta = read_metadata(files["parquet"])
    assert meta["study"] == "plugin_study" and meta["config_hash"]
    df = pl.read_parquet(files["parquet"])
    assert df["copy"].to_list() == ["baseline", "dma", "dma"]
    assert df["channels"].to_list() == [0, 1, 4]
    # the job's rows are the study's run on the same platform and parameters
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config.update(PLUGIN)
    params = study_params(config, "plugin_study")
    platform = load_platform(work / "config" / "platforms" / "epyc-zen3-ptdma.yaml")
    again = plugin_study.SCHEMA.conform(plugin_study.run(platform, params))
    assert df.equals(again)
    assert df.filter(pl.col("copy") == "baseline")["speedup"].to_list() == [1.0]


def test_plugin_study_figure_table_findings_and_page(work):
    files = study_files(str(work / "results"), "plugin_study")
    check_figure_files(work / "results" / "whatif" / "plugin_study")
    assert Path(files["md"]).read_text().startswith("## Plug-in: 2M folios")
    findings = Path(files["findings"]).read_text()
    assert findings.startswith("## Plug-in: 2M folios, CPU copy against DMA: findings")
    page = Path(files["page"]).read_text()
    assert "<h1>Plug-in: 2M folios, CPU copy against DMA</h1>" in page
    assert page.count("class='findings'") == 1 and "<svg" in page and "<table>" in page


def test_plugin_study_is_on_the_studies_page_and_the_others_are_off(work):
    page = (work / "results" / "whatif" / "index.html").read_text()
    assert "id='whatif-plugin_study'" in page
    assert not [n for n in registry() if f"id='whatif-{n}'" in page]
    assert not (work / "results" / "runs" / "whatif" / "hybrid").exists()


def test_a_bad_plugin_section_stops_before_any_job(tmp_path):
    work = copy_workflow(tmp_path / "w")
    (work / "plugins").mkdir()
    shutil.copy2(HERE / "plugin_study.py", work / "plugins" / "plugin_study.py")
    bad = {**PLUGIN, "whatif": {**PLUGIN["whatif"], "plugin_study": {"channels": [0]}}}
    (work / "plugin.yaml").write_text(yaml.safe_dump(bad))
    proc = run(work, "-n", "--configfile", "config/smoke.yaml", "plugin.yaml")
    assert proc.returncode != 0
    assert "whatif.plugin_study.channels" in proc.stdout + proc.stderr
    assert not (work / "results").exists()
