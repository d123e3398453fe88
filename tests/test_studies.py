"""The study registry: every study one module under migsim/studies/, its configuration
section the one of the workflow schema, plug-ins loaded by the configuration key or an entry
point, and one-line errors for a bad plug-in."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import migsim.studies as studies
from migsim.studies import common

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
WHATIF = SCHEMA["properties"]["whatif"]


def test_every_builtin_study_is_one_module_of_the_studies_package():
    reg = studies.registry()
    assert list(reg) == ["cluster_max", "engine_class", "hybrid", "fragmentation", "latency"]
    for name, study in reg.items():
        assert study.module == f"migsim.studies.{name}"
        assert study.title and study.caption
    package = {m.name for m in pkgutil.iter_modules(studies.__path__)}
    assert set(reg) <= package
    assert not [m for m in package if "whatif" in m]


def test_loading_the_registry_imports_declarations_only():
    """The Snakefile loads the registry at parse: the study modules declare, and import
    Altair, Polars and PyArrow only inside the functions that build a chart or a frame."""
    code = (
        "import sys\nimport migsim.studies as ms\n"
        "reg = ms.registry({})\nassert reg\n"
        "for s in reg.values():\n    s.schema.names\n"
        "print(json.dumps([m for m in ('altair', 'polars', 'pyarrow', 'vl_convert') "
        "if m in sys.modules]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-c", "import json\n" + code],
        capture_output=True, text=True, env=env, cwd=ROOT, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_no_module_named_whatif_anywhere_in_migsim():
    src = ROOT / "src" / "migsim"
    assert not [p for p in src.rglob("*.py") if "_whatif" in p.stem]


@pytest.mark.parametrize("name", list(studies.registry()))
def test_study_section_is_the_one_of_the_workflow_schema(name):
    study = studies.registry()[name]
    assert WHATIF["properties"][name] == dict(study.config_schema)
    assert name in WHATIF["required"]


def test_whatif_section_is_the_shared_keys_and_the_studies():
    shared = set(WHATIF["properties"]) - set(studies.registry())
    assert {k: WHATIF["properties"][k] for k in shared} == common.SETUP_SCHEMA
    assert WHATIF["additionalProperties"] is False


def test_config_schema_merges_a_plugin_section_and_leaves_the_file_alone(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    cfg = {"study_modules": ["plugin_study"]}
    merged = studies.config_schema(SCHEMA, cfg)
    assert merged["properties"]["whatif"]["properties"]["plugin_study"]["type"] == "object"
    assert "plugin_study" not in WHATIF["properties"]  # deep copy: the file's schema unchanged
    assert "plugin_study" in studies.registry(cfg)
    assert studies.enabled({**cfg, "whatif": {"plugin_study": {"enabled": True}}}) == [
        "plugin_study"
    ]
    assert studies.enabled({**cfg, "whatif": {"plugin_study": {"enabled": False}}}) == []


def test_a_plugin_module_from_an_entry_point(monkeypatch):
    from importlib import metadata

    class EP:
        value = "plugin_study"

    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    real = metadata.entry_points
    monkeypatch.setattr(
        metadata,
        "entry_points",
        lambda **kw: [EP()] if kw.get("group") == studies.ENTRY_POINT_GROUP else real(**kw),
    )
    assert "plugin_study" in studies.registry()


@pytest.mark.parametrize(
    ("modules", "message"),
    [
        (["no_such_module_xyz"], "study_modules: cannot import study module 'no_such_module_xyz'"),
        (["json"], "study_modules: module 'json' defines no STUDY"),
        (["migsim.studies.hybrid"], None),  # a built-in named again: loaded once
    ],
)
def test_bad_plugin_modules_are_one_line_errors(modules, message):
    if message is None:
        assert list(studies.registry({"study_modules": modules})) == list(studies.registry())
        return
    with pytest.raises(ValueError, match=message):
        studies.registry({"study_modules": modules})


def test_two_studies_of_one_name_name_both_modules(monkeypatch, tmp_path):
    (tmp_path / "dup_study.py").write_text(
        "from migsim.studies.hybrid import STUDY as _S\n"
        "import dataclasses\n"
        "STUDY = dataclasses.replace(_S, module='dup_study')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="'hybrid' of dup_study is already defined by "):
        studies.registry({"study_modules": ["dup_study"]})


def test_study_files_hold_page_figure_table_findings_and_summary():
    files = studies.study_files("results", "hybrid", "results/runs/whatif/hybrid/d.parquet")
    assert files["parquet"] == "results/runs/whatif/hybrid/d.parquet"
    assert "parquet" not in studies.study_files("results", "hybrid")  # no fixed path
    assert files["page"] == "results/whatif/hybrid_page.html"
    assert {"html", "svg", "png", "md", "table_html", "findings"} <= set(files)


def test_results_readme_documents_every_study_schema():
    from migsim.output.tables import describe_schemas

    readme = (ROOT / "results" / "README.md").read_text()
    doc = describe_schemas([s.schema for s in studies.registry().values()])
    assert doc.strip() in readme, "results/README.md: regenerate the study schemas section"


def test_a_study_summary_is_named_by_its_parameters_code_and_platform():
    """A changed value, engine or platform names a new file: the previous one stays (issue 16)."""
    params = {"study": "hybrid", "seed": 1}
    a = studies.study_run("results", "hybrid", params, "c0de")
    assert a.startswith("results/runs/whatif/hybrid/") and a.endswith(".parquet")
    assert studies.summary_study(a) == "hybrid"
    assert studies.summary_study("results/whatif/hybrid.html") is None
    assert studies.study_run("results", "hybrid", params, "c0de") == a
    assert studies.study_run("results", "hybrid", {**params, "seed": 2}, "c0de") != a
    assert studies.study_run("results", "hybrid", params, "c0dd") != a
