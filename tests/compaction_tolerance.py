"""The compaction table's tolerances (issue 3), shared by the engine-level reproduction test
and the test of the pipeline's reproduced tables, with the known misfit marked in one place.

Known misfit of the predicted busy-dma row with one DMA channel (dcbm's default): the hog's
gain (+12.3% against +6.0%). The stage-1 (throughput) fit identifies the CPU time that
offloading saves per 4K folio at 0.27 +- 0.08 us (the baseline row's per-folio cost minus
the DMA rows' CPU-bound floor); the published compaction rows imply 0.51 (idle) and 0.57
(busy) us per migrated page, and the hog gets the CPU that compaction does not use. The mark
is strict: a check that starts passing fails loudly, so the list cannot go stale.
"""

from __future__ import annotations

import pytest

MODES = ("baseline", "dma", "busy-baseline", "busy-dma")
KNOWN_GAPS = {"hog_gain"}
_GAP = pytest.mark.xfail(
    strict=True, reason="DMA saves less CPU per 4K page in the model than in the published rows"
)


def check_names() -> list:
    """Every check, as pytest params (known gaps marked xfail strict)."""
    names = [
        f"{m}[{mode}]"
        for m in ("pages_migrated", "wall_ms", "sys_pct", "idle_pct")
        for mode in MODES
    ]
    names.append("hog_gain")
    return [pytest.param(n, marks=_GAP) if n in KNOWN_GAPS else n for n in names]


def check(name: str, sim: dict[str, dict], pub: dict[str, dict]) -> None:
    """Assert one check on simulated and published rows, each keyed by mode."""
    if name == "hog_gain":

        def gain(rows):
            return 100 * (
                rows["busy-dma"]["hog_iterations"] / rows["busy-baseline"]["hog_iterations"] - 1
            )

        assert abs(gain(sim) - gain(pub)) <= 3.0, (
            f"busy-dma hog gain {gain(sim):+.1f}% vs published {gain(pub):+.1f}% (limit 3 points)"
        )
        return
    metric, mode = name[:-1].split("[")
    s, p = sim[mode][metric], pub[mode][metric]
    if metric == "pages_migrated":
        assert abs(s / p - 1) <= 0.05, f"{mode} pages migrated {s} vs {p} (limit 5%)"
    elif metric == "wall_ms":
        assert abs(s / p - 1) <= 0.10, f"{mode} wall {s:.0f} ms vs {p} ms (limit 10%)"
    else:
        assert abs(s - p) <= 5.0, f"{mode} {metric} {s:.2f} vs {p:.2f} (limit 5 points)"
