"""The host_twin target's table and figures from a twin JSON document, and its file when the
twin cannot run here (no root needed)."""

from __future__ import annotations

import json

from migsim.host import pipeline as host
from migsim.host import probe, twin


def _doc() -> dict:
    runs = []
    for i, (m, p) in enumerate(((1000, 1100), (50_000, 45_000))):
        counters = {k: m for k in host.TWIN_COUNTERS}
        pred = {k: p for k in host.TWIN_COUNTERS}
        runs.append(
            {
                "measured": {**counters, "seconds": 0.1 * (i + 1)},
                "predicted": {**pred, "seconds": 0.05, "scan_seconds": 0.01, "other_seconds": 0.04},
                "cpu_seconds": 0.05 * (i + 1),
                "calls": {"measured": [32, 224, 0], "predicted": [32, 224]},
            }
        )
    twin.add_fitted_seconds(runs)
    return {"runs": runs, "size": 2 << 30, "free_ratio": 0.5, "kernel": "k", "skipped": ""}


def test_table_markdown_and_figures(tmp_path):
    doc = _doc()
    t = host.twin_table(doc)
    row = t.filter((t["counter"] == "pgmigrate_success") & (t["run"] == 1)).row(0, named=True)
    assert (row["measured"], row["predicted"]) == (50_000, 45_000) and abs(
        row["error"] + 0.1
    ) < 1e-12
    # leave one out: run 0's seconds use the scale fitted on run 1 alone (0.2 s / 0.05 s)
    s0 = t.filter((t["counter"] == "seconds") & (t["run"] == 0)).row(0, named=True)
    assert abs(s0["predicted"] - 0.05 * 4.0) < 1e-12
    md = host.twin_markdown(doc)
    assert "| pgmigrate_success | 1,000 / 1,100 (+10.0%) | 50,000 / 45,000 (-10.0%) |" in md
    calls = host.twin_calls_frame(doc)
    # 3 measured and 2 simulated calls per run
    assert calls.height == 10
    assert calls.filter(calls["source"] == "measured")["pages"].to_list() == [32, 224, 0] * 2
    path = tmp_path / "twin.json"
    path.write_text(json.dumps(doc))
    host.twin_report(str(path), str(tmp_path / "t.md"), str(tmp_path / "p"), str(tmp_path / "c"))
    for stem in ("p", "c"):
        for ext in ("html", "svg", "png"):
            assert (tmp_path / f"{stem}.{ext}").stat().st_size > 1000


def test_unavailable_twin_writes_the_reason(tmp_path, monkeypatch):
    def unavailable(*a, **k):
        raise probe.ProbeUnavailable("compaction probe needs root")

    monkeypatch.setattr(twin, "host_twin", unavailable)
    out = tmp_path / "twin.json"
    assert host.run_twin(host.twin_params({}), str(out)) == "compaction probe needs root"
    doc = json.loads(out.read_text())
    assert doc["runs"] == [] and doc["size"] == "2G"
    assert "Skipped on this machine: compaction probe needs root" in host.twin_markdown(doc)
    assert host.twin_parity_chart(doc).to_dict()["mark"]["type"] == "text"
