"""The compaction table's checks (issue 12's tolerances, issue 18's labels), shared by the
engine-level reproduction test and the test of the pipeline's reproduced tables, each labelled
by what it can tell.

Tolerances: wall time within 10%, pages migrated within 5%, user, sys and idle within 3
points, the share left to none of user, sys and idle within 0.5 points of the published rows'
(/proc/stat's irq and softirq, and on an idle CPU the idle task's work after its idle state
ended, which /proc/stat shows in no column: migsim.cost.timeline); the kernel CPU that offloading saves per migrated page within 25% of the
published rows' (0.51 us idle, 0.57 busy); the busy-dma hog-iteration gain within 3 points of
the published +6.0%.

Predictions (PREDICTIONS: can fail for a wrong model): the rows the fit does not see, pages
migrated once (one page-level run is costed for every mode, so the other modes' counts repeat
it), the CPU saved per page and the hog gain. By construction or fitted (BY_CONSTRUCTION,
marked ``change_detector``): the baseline wall time is the cell stage 2 fits; the baseline sys
and idle shares are those of a CPU that never sleeps; no mode without the hog has user time;
in the busy modes the hog takes every sleep (idle 0). They fail only when the engine changes
what it does by construction, so they stay, labelled and counted apart.

Known misfits (strict xfail, so a fix shows), traced to one number: the kernel CPU that
offloading saves per migrated page, 0.38 (idle, inside its 25% since the stage-1 refit with
the interconnect's load, dma.fabric_load_switch 1, by 0.2 points: -24.8%) and 0.35 (busy) us in the model against
0.51 and 0.57 in the published rows. The stage-1 fit identifies 0.37 +- 0.05 us per 4K folio; the
allocation side (no zeroing: init_on_alloc is off on the published kernel, as its throughput
table shows), the split compaction costs and the small-batch cache effect (derived from Zen
3's L2, within a call and between calls: +0.023 us) do not change it by more. With the engine moving 4K folios in 64 KiB mapped segments
at the rate the 16K and 64K throughput columns fix (the 4K column with one channel comes out
slow for the same reason), the busy-dma run is 6.9% long and the hog gets +17.0%
instead of +6.0%. The hog gain is also out of reach
of any hog whose iterations follow its CPU time, as the model's do (3.70e9 per second of user time in both busy modes): the published rows' user time gains
+10.2% (56.32% of 32.475 s against 49.90% of 33.256 s) while their iterations gain +6.0%, so
busy-dma ran 3.8% fewer iterations per second of user time (3.610e9 against 3.754e9).
"""

from __future__ import annotations

import pytest

MODES = ("baseline", "dma", "busy-baseline", "busy-dma")
PREDICTIONS = (
    "pages_migrated[baseline]",
    "wall_ms[dma]",
    "wall_ms[busy-baseline]",
    "wall_ms[busy-dma]",
    "sys_pct[dma]",
    "idle_pct[dma]",
    "user_pct[busy-baseline]",
    "user_pct[busy-dma]",
    "sys_pct[busy-baseline]",
    "sys_pct[busy-dma]",
    *(f"missing_share[{mode}]" for mode in MODES),
    "cpu_saved_per_page[idle]",
    "cpu_saved_per_page[busy]",
    "hog_gain",
)
BY_CONSTRUCTION = (
    "wall_ms[baseline]",  # the cell stage 2 fits the compaction costs on
    "sys_pct[baseline]",  # a CPU that never sleeps is all kernel time
    "idle_pct[baseline]",
    "user_pct[baseline]",  # no user task without the hog
    "user_pct[dma]",
    "idle_pct[busy-baseline]",  # the hog runs through every sleep
    "idle_pct[busy-dma]",
)
KNOWN_GAPS = {"hog_gain", "cpu_saved_per_page[busy]"}
_GAP = pytest.mark.xfail(
    strict=True, reason="DMA saves less CPU per 4K page in the model than in the published rows"
)
_HOG_GAP = pytest.mark.xfail(
    strict=True,
    reason="hog gain +17.0% against +6.0%: the busy-dma run is 6.9% long (4K folios' 64 KiB "
    "segments), the offload saves the model less kernel CPU, and the published busy-dma run "
    "has 3.8% fewer hog iterations per second of user time",
)


def check_names(*, with_irq: bool = True) -> list:
    """Every check, as pytest params: the predictions (known gaps marked xfail strict), then
    the by-construction checks marked ``change_detector``. `with_irq=False` leaves out the
    missing-share checks (for tables that hold the published columns only)."""
    names = [
        pytest.param(n, marks=_HOG_GAP if n == "hog_gain" else _GAP) if n in KNOWN_GAPS else n
        for n in PREDICTIONS
        if with_irq or not n.startswith("missing_share")
    ]
    names += [pytest.param(n, marks=pytest.mark.change_detector) for n in BY_CONSTRUCTION]
    return names


def missing_share(row: dict) -> float:
    """Points of a row that are none of user, sys and idle: /proc/stat's irq and softirq (the
    reply did not print them) and what it shows in no column (the idle task after its idle
    state ended); nice, iowait and steal are 0 here."""
    return 100.0 - row["user_pct"] - row["sys_pct"] - row["idle_pct"]


def sys_us_per_page(row: dict) -> float:
    """Kernel CPU time per migrated page, us: wall x sys% / pages."""
    return row["wall_ms"] * 1e3 * row["sys_pct"] / 100 / row["pages_migrated"]


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
    if metric == "cpu_saved_per_page":
        base, dma = ("baseline", "dma") if mode == "idle" else ("busy-baseline", "busy-dma")

        def saved(rows):
            return sys_us_per_page(rows[base]) - sys_us_per_page(rows[dma])

        s, p = saved(sim), saved(pub)
        assert abs(s / p - 1) <= 0.25, (
            f"CPU saved per page by offload ({mode}) {s:.3f} us vs published {p:.3f} (limit 25%)"
        )
        return
    if metric == "missing_share":
        s, p = missing_share(sim[mode]), missing_share(pub[mode])
        assert abs(s - p) <= 0.5, f"{mode} not user/sys/idle {s:.2f} vs {p:.2f} points (limit 0.5)"
        return
    s, p = sim[mode][metric], pub[mode][metric]
    if metric == "pages_migrated":
        assert abs(s / p - 1) <= 0.05, f"{mode} pages migrated {s} vs {p} (limit 5%)"
    elif metric == "wall_ms":
        assert abs(s / p - 1) <= 0.10, f"{mode} wall {s:.0f} ms vs {p} ms (limit 10%)"
    else:
        assert abs(s - p) <= 3.0, f"{mode} {metric} {s:.2f} vs {p:.2f} (limit 3 points)"
