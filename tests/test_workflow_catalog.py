"""The Snakemake workflow catalog's conventions: `snakemake --lint` finds nothing, every rule
that runs code names the workflow's one software environment, which installs the Python that
pyproject.toml requires and migsim from this checkout (these machines have no conda: the file
is checked against pyproject.toml, not deployed), and the catalog's files describe the usage
and every configuration key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from pipeline_util import copy_workflow, snakemake

ROOT = Path(__file__).resolve().parents[1]
ENV = ROOT / "workflow" / "envs" / "migsim.yaml"
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


def schema_keys(node: dict, path: str = "") -> list[str]:
    """Every key path of the configuration schema (sections and leaves)."""
    out = [path] if path else []
    for key, sub in (node.get("properties") or {}).items():
        out += schema_keys(sub, f"{path}.{key}" if path else key)
    return out


def test_snakemake_lint_finds_nothing(tmp_path):
    work = copy_workflow(tmp_path / "w", with_src=False)
    proc = snakemake(work, "--lint", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in text, text[-6000:]


def test_every_rule_that_runs_code_names_the_environment_file():
    rules = ROOT / "workflow" / "rules"
    for smk in sorted(rules.glob("*.smk")):
        for block in re.split(r"\n(?=rule )", smk.read_text())[1:]:
            name = block.split(":", 1)[0][5:]
            if re.search(r"^\s+(script|shell|run):", block, re.M):
                assert re.search(r'^\s+conda:\n\s+"\.\./envs/migsim\.yaml"', block, re.M), (
                    f"{smk.name}: rule {name} has no conda: ../envs/migsim.yaml"
                )


def test_environment_file_is_the_python_and_the_checkout_of_pyproject():
    env = yaml.safe_load(ENV.read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = env["dependencies"]
    python = [d for d in deps if isinstance(d, str) and d.replace(" ", "").startswith("python=")]
    assert len(python) == 1
    want = re.match(r">=\s*(\d+\.\d+)", project["requires-python"]).group(1)
    assert python[0].replace(" ", "") == f"python={want}"
    assert "pip" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    # one pip line: this checkout, whose pyproject.toml brings every dependency
    assert len(pip) == 1
    target = pip[0].split()[-1]
    assert (ENV.parent / target / "pyproject.toml").resolve() == (ROOT / "pyproject.toml")
    # nothing else is installed beside it, so nothing can disagree with pyproject.toml
    assert {d if isinstance(d, str) else "pip:" for d in deps} == {python[0], "pip", "pip:"}


def test_catalog_file_declares_conda_and_the_report():
    cat = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert cat["software-stack-deployment"]["conda"] is True
    assert cat["report"] is True
    assert "desc" in cat["mandatory-flags"]


# ids "key:<path>": a bare "host" id would be taken for the host marker (tests/conftest.py)
@pytest.mark.parametrize("key", schema_keys(SCHEMA), ids=lambda k: f"key:{k}")
def test_config_readme_names_every_key(key):
    text = (ROOT / "config" / "README.md").read_text()
    parts = key.split(".")
    # a row names a key in full (`a.b.c`) or as a shorthand after its section (`, .c`)
    if f"`{key}`" in text or f"`{key}." in text:
        return
    section, leaf = ".".join(parts[:-1]), parts[-1]
    if len(parts) == 3 and parts[0] == "whatif" and f"`whatif.<study>.{leaf}`" in text:
        return  # a key every study has
    rows = [ln for ln in text.splitlines() if ln.startswith("|") and f"`{section}." in ln]
    assert any(f"`.{leaf}`" in ln or f"`{section}.{leaf}`" in ln for ln in rows), key


@pytest.mark.parametrize(
    "key",
    [k for k in schema_keys(SCHEMA) if k.count(".") <= 1 and not k.startswith("reference")],
    ids=lambda k: f"key:{k}",
)
def test_readme_names_every_section_and_its_keys(key):
    text = (ROOT / "README.md").read_text()
    head, _, leaf = key.partition(".")
    assert (
        f"`{key}`" in text
        or f"`{key}." in text
        or (leaf and re.search(rf"`{head}\.[^`]*\b{leaf}\b", text))
        or (leaf and re.search(rf"^\| `{head}\.[^|]*`{leaf}`", text, re.M))
    ), key
