"""A real browser: headless Chromium (Debian's `chromium`, driven by Playwright) opens each HTML
figure and results/index.html of a smoke run from disk with the network off, and finds the
rendered chart (an SVG or canvas inside the embed container) with no console error and no
network request.

Skips with a printed reason only when Chromium or Playwright is missing outside CI; in CI
(CI=true, where .ci/run installs chromium) it always runs."""

from __future__ import annotations

from pathlib import Path

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


@pytest.fixture(scope="module")
def browser():
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


def test_index_renders_every_figure_offline(browser, results):
    seen = open_offline(
        browser, results / "index.html", "figure.chart .embed svg", count=len(FIGURES)
    )
    assert seen["errors"] == []
    assert seen["requests"] == []
    assert seen["size"][0] > 100 and seen["size"][1] > 100
    assert seen["marks"] > 20
