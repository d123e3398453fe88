"""The what-if studies in the real workflow (the shared smoke run of config/smoke.yaml): every
enabled study leaves a summary Parquet with its schema and metadata, a figure in three
formats, a Markdown table and a findings paragraph whose every number matches the Parquet,
and results/index.html and results/whatif/index.html link them all."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
from pipeline_util import (
    config_error,
    copy_workflow,
    load_config,
    smoke_run,
    snakemake,
    study_summary,
)
from test_figures import check_figure_files
from whatif_expect import EXPECTED, check

from migsim.output.tables import read_metadata
from migsim.studies import enabled as enabled_studies
from migsim.studies import registry, study_files

STUDIES = registry()
SCHEMAS = {name: s.schema for name, s in STUDIES.items()}
TITLES = {name: s.title for name, s in STUDIES.items()}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return smoke_run(tmp_path_factory)


@pytest.fixture(scope="module")
def config(work):
    return load_config(work, "config/smoke.yaml")


def test_every_study_is_on_by_default(work):
    assert enabled_studies(load_config(work)) == list(STUDIES)


def test_summary_parquet_schema_and_metadata(work, config):
    for study in enabled_studies(config):
        path = study_summary(work / "results", study)
        SCHEMAS[study].check_file(path)
        meta = read_metadata(path)
        assert meta["study"] == study and meta["config_hash"] and meta["migsim_version"]
        df = pl.read_parquet(path)
        assert df.height > 0
        assert df.equals(SCHEMAS[study].conform(df)), "not sorted by the schema's keys"


def test_figure_table_and_findings_of_every_study(work, config):
    for study in enabled_studies(config):
        summary = str(study_summary(work / "results", study))
        files = study_files(str(work / "results"), study, summary)
        check_figure_files(work / "results" / "whatif" / study)
        md = Path(files["md"]).read_text()
        assert md.startswith(f"## {TITLES[study]}") and "|" in md
        page = Path(files["table_html"]).read_text()
        assert "<table>" in page and "class='findings'" in page and "http" not in page
        own = Path(files["page"]).read_text()
        assert own.count("class='findings'") == 1 and "<svg" in own and "<table>" in own
        findings = Path(files["findings"]).read_text()
        heading, text = findings.split("\n\n", 1)
        assert heading == f"## {TITLES[study]}: findings"
        check(text.strip(), EXPECTED[study](pl.read_parquet(files["parquet"])))


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"])


def test_pages_link_every_study_output(work, config):
    """results/whatif/index.html links every output of every study, each findings paragraph
    once; results/index.html has a section per study that links the study's own page."""
    results = work / "results"
    for page, ids in (("whatif/index.html", "whatif-{}"), ("index.html", "study-{}")):
        path = results / page
        text = path.read_text()
        parser = _Links()
        parser.feed(text)
        targets = {(path.parent / h).resolve() for h in parser.hrefs}
        assert all(t.is_file() for t in targets), [t for t in targets if not t.is_file()]
        for study in enabled_studies(config):
            assert f"id='{ids.format(study)}'" in text
            summary = str(study_summary(results, study))
            files = study_files(str(results), study, summary)
            if page.startswith("whatif"):
                section = text.split(f"id='whatif-{study}'", 1)[1].split("</section>", 1)[0]
                assert section.count("class='findings'") == 1, f"{study}: findings twice on {page}"
                wanted = files.items()
            else:
                wanted = [("page", files["page"])]
            for key, file in wanted:
                assert Path(file).resolve() in targets, key
        assert not re.search(r"(src|href)=['\"]https?:", text)


def test_disabled_study_is_not_planned(tmp_path):
    """A study switched off in the config plans no job and leaves it out of the pages."""
    work = copy_workflow(tmp_path / "w", with_src=False)
    proc = snakemake(
        work,
        "-n",
        "--configfile",
        "config/smoke.yaml",
        "--config",
        "whatif={hybrid: {enabled: false}}",
    )
    assert "results/runs/whatif/hybrid/" not in proc.stdout
    assert "results/runs/whatif/latency/" in proc.stdout


@pytest.mark.parametrize(
    "override, key",
    [
        ("whatif={hybrid: {channels: [0]}}", "whatif.hybrid.channels"),
        ("whatif={latency: {knee_pct: 150}}", "whatif.latency.knee_pct"),
        ("whatif={allocations: 100000}", "whatif.allocations"),
    ],
)
def test_bad_whatif_config_stops_before_any_job(tmp_path, override, key):
    """In-process, as snakemake assembles and checks the configuration before any job
    (pipeline_util.config_error; tests/test_config_schema.py runs such a stop through the
    real snakemake)."""
    work = copy_workflow(tmp_path / "w", with_src=False)
    err = config_error(work, configfiles=("config/smoke.yaml",), config=(override,))
    assert err is not None and key in err, err
