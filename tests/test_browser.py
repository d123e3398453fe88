"""A real browser: headless Chromium (Debian's `chromium`, driven by Playwright) opens each HTML
figure and results/index.html of a smoke run from disk with the network off, and finds the
rendered chart (an SVG or canvas inside the embed container) with no console error and no
network request.

Skips with a printed reason only when Chromium or Playwright is missing outside CI; in CI
(CI=true, where .ci/run installs chromium) it always runs."""

from __future__ import annotations

from pathlib import Path

import answer_expect
import polars as pl
import pytest
from pipeline_util import in_ci, smoke_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FIGURES = ("throughput", "speedup", "parity", "compaction", "alloc_latency")


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (Debian package chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed"
    return None


def launch_browser():
    """The headless Chromium of the browser tests (a generator: yields it, closes it; the
    session fixture `browser` of tests/conftest.py, one Chromium for this module and
    tests/test_whatif_browser.py); skips with the reason where it is missing outside CI."""
    reason = _missing()
    if reason:
        if in_ci():
            pytest.fail(f"browser test must run in CI: {reason}")
        print(f"SKIP browser test: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return smoke_run(tmp_path_factory) / "results"


def open_offline(browser, path: Path, selector: str, *, count: int = 1) -> dict:
    """Open `path` from disk in an offline context with every non-file request aborted; wait
    for `count` elements matching `selector`. Returns console errors, page errors, requests."""
    context = browser.new_context(offline=True)
    seen = {"errors": [], "requests": []}

    def route(r):
        url = r.request.url
        if url.startswith("file://") or url.startswith("data:"):
            r.continue_()
        else:
            seen["requests"].append(url)
            r.abort()

    try:
        page = context.new_page()
        page.route("**/*", route)
        page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
        page.on("pageerror", lambda e: seen["errors"].append(str(e)))
        page.goto(path.resolve().as_uri())
        page.wait_for_function(
            "([sel, n]) => document.querySelectorAll(sel).length >= n",
            arg=[selector, count],
            timeout=20_000,
        )
        box = page.locator(selector).first.bounding_box()
        seen["size"] = (box["width"], box["height"]) if box else (0, 0)
        seen["marks"] = page.evaluate(
            "(sel) => document.querySelector(sel).querySelectorAll('path, rect, text').length",
            selector,
        )
    finally:
        context.close()
    return seen


@pytest.mark.parametrize("name", FIGURES)
def test_figure_html_renders_offline(browser, results, name):
    seen = open_offline(
        browser, results / "figures" / f"{name}.html", "#vis.vega-embed svg, #vis.vega-embed canvas"
    )
    assert seen["errors"] == []
    assert seen["requests"] == []
    assert seen["size"][0] > 100 and seen["size"][1] > 100
    assert seen["marks"] > 20  # drawn marks, not an empty frame


def test_index_renders_offline(browser, results):
    """The answer's figure is drawn and every study's thumbnail image loads, offline."""
    seen = open_offline(browser, results / "index.html", "#answer figure svg")
    assert seen["errors"] == []
    assert seen["requests"] == []
    assert seen["size"][0] > 100 and seen["size"][1] > 60
    assert seen["marks"] > 20
    page = read_page(browser, results / "index.html")
    assert page["thumbs"], "no study thumbnail on the index"
    assert all(w > 0 for _, w in page["thumbs"]), page["thumbs"]


def read_page(browser, path: Path, width: int = 1280) -> dict:
    """What a reader of `path` sees in a `width` px wide window, offline: the answer's box
    (px from the top of the page), its text and marked numbers, every paragraph's text, the
    thumbnails (src, natural width) and the links."""
    context = browser.new_context(offline=True, viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        page.route(
            "**/*",
            lambda r: r.continue_() if r.request.url.startswith(("file:", "data:")) else r.abort(),
        )
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        return page.evaluate(
            """() => {
              const a = document.querySelector('#answer');
              const box = a ? a.getBoundingClientRect() : null;
              const text = a ? a.querySelector('.answer-text') : null;
              return {
                answer: box && {top: box.top + scrollY, bottom: box.bottom + scrollY},
                first: document.body.firstElementChild && document.querySelector('body > section, body > h2')?.id,
                text: text ? text.innerText : '',
                numbers: a ? [...a.querySelectorAll('data.num')].map(
                  d => [d.dataset.key, d.getAttribute('value'), d.textContent]) : [],
                figure: a ? [...a.querySelectorAll('figure svg text')].map(t => t.textContent) : [],
                paragraphs: [...document.querySelectorAll('p')].map(p => p.innerText.trim()),
                thumbs: [...document.querySelectorAll('img.thumb')].map(i => [i.src, i.naturalWidth]),
                links: [...document.querySelectorAll('a[href]')].map(x => x.getAttribute('href')),
              };
            }"""
        )
    finally:
        context.close()


@pytest.fixture(scope="module")
def index(browser, results) -> dict:
    return read_page(browser, results / "index.html")


def test_answer_opens_the_page_within_1200_px(index):
    assert index["answer"] is not None, "no #answer on results/index.html"
    assert index["first"] == "answer", "the answer is not the page's first section"
    assert index["answer"]["bottom"] <= 1200, index["answer"]


def test_every_number_of_the_answer_matches_the_parquet(index, results):
    f = answer_expect.frames(results)
    numbers = index["numbers"]
    assert numbers, "the answer states no number"
    # every number a reader sees in the answer's text is a marked one
    marked = [t for _, _, text in numbers for t in answer_expect.numbers_in(text)]
    assert sorted(answer_expect.numbers_in(index["text"])) == sorted(marked), index["text"]
    for key, value, text in numbers:
        want = answer_expect.expected(key, f)
        assert answer_expect.matches(text, want), (key, text, want)
        if not isinstance(want, str):
            assert float(value) == pytest.approx(want, rel=1e-9, abs=1e-9), (key, value, want)
    keys = [k for k, _, _ in numbers]
    for prefix in answer_expect.required_prefixes(f):
        assert any(k.startswith(prefix) for k in keys), f"the answer lacks {prefix}"
    # the figure: one label per DMA cell, each its simulated speed-up
    dma = f["throughput"].filter(pl.col("mode") == "dma")
    labels = sorted(t for t in index["figure"] if t.endswith("×") and t[0].isdigit())
    assert labels == sorted(f"{v:.2f}×" for v in dma["speedup"].to_list())


def test_no_findings_paragraph_appears_twice(index, results):
    paragraphs = [p for p in index["paragraphs"] if len(p) > 40]
    repeated = {p for p in paragraphs if paragraphs.count(p) > 1}
    assert not repeated, repeated
    page = " ".join(index["paragraphs"])
    for md in sorted((results / "whatif").glob("*_findings.md")):
        text = " ".join(ln for ln in md.read_text().splitlines() if ln and not ln.startswith("#"))
        assert page.count(text.strip()) <= 1, md.name


def test_index_links_the_series_page_and_every_study_page(index, results):
    links = index["links"]
    assert any(h.endswith("series/published.html") for h in links), links
    for href in links:
        if not href.startswith(("#", "http")):
            assert (results / href).exists(), href
