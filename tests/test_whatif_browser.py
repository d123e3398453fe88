"""Headless Chromium opens each what-if figure's HTML and results/whatif/index.html from disk
with the network off and finds the rendered charts with no console error and no network
request (the browser set-up and its skip rule are those of tests/test_browser.py: the session
fixture `browser`, one Chromium for both modules)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_util import smoke_run
from test_browser import open_offline

from migsim.studies import registry

STUDIES = list(registry())

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return smoke_run(tmp_path_factory) / "results"


@pytest.mark.parametrize("study", STUDIES)
def test_whatif_figure_renders_offline(browser, results, study):
    seen = open_offline(
        browser,
        results / "whatif" / f"{study}.html",
        "#vis.vega-embed svg, #vis.vega-embed canvas",
    )
    assert seen["errors"] == []
    assert seen["requests"] == []
    assert seen["size"][0] > 100 and seen["size"][1] > 100
    assert seen["marks"] > 20


def test_whatif_page_shows_every_study_offline(browser, results):
    seen = open_offline(
        browser, results / "whatif" / "index.html", "figure.chart .embed svg", count=len(STUDIES)
    )
    assert seen["errors"] == []
    assert seen["requests"] == []
    assert seen["marks"] > 20
