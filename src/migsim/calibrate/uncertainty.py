"""What the prediction intervals take as uncertain besides the fit: each prior's stated range
and the classes of the model-discrepancy term. Apart from the fit (calibrate.throughput) so
that the intervals (calibrate.intervals), which the fit uses for its gradients, need not
import it."""

from __future__ import annotations

# Stated ranges of the priors, for the prediction intervals (migsim.calibrate.intervals: taken
# as uniform, propagated through the total derivative: the fitted parameters refitted to the
# changed prior, see fit_response). The source of each range is the source of its value in
# PRIORS (code path and order of magnitude): a factor of 2-3 either way; cpu.addr_lookup_us
# the 0.1-0.2 us its comment derives. A prior whose only observable effect is its sum with a
# fitted cost (cpu.addr_lookup_us with cpu.folio_fixed_us) then costs a fitted cell nothing:
# the refit takes it up. copy.cpu_copy_fixed_us and dma.desc_restart_us have no range: their
# PRIORS comments state none (a call's first misses; a lower bound).
PRIOR_RANGES: dict[str, tuple[float, float]] = {
    "cpu.tlb_flush_us": (2.0, 10.0),
    "cpu.syscall_us": (1.0, 5.0),
    "cpu.lru_cache_disable_us": (10.0, 60.0),
    "cpu.addr_lookup_us": (0.1, 0.2),
    "dma.call_setup_us": (0.3, 3.0),
    "dma.desc_prep_us": (0.1, 0.5),
    "dma.chan_request_us": (1.0, 6.0),
    "dma.sgt_map_us": (1.0, 6.0),
    "dma.map_page_us": (0.2, 1.5),
    "dma.issue_us": (0.2, 1.5),
    "dma.terminate_us": (0.3, 3.0),
    "dma.irq_wakeup_us": (5.0, 30.0),
    "mt.thread_start_us": (1.0, 5.0),
}


# Classes of the model-discrepancy term, declared before any fit: one per copy path (the CPU's
# folio_copy, the dcbm offload, mtcopy's threads). Each path has its own mechanisms and fitted
# parameters, so what they leave unexplained need not be the same size.
DISCREPANCY_CLASSES = ("baseline", "dma", "mt")


def discrepancy_class(mode: str) -> str:
    """The discrepancy class of a cell's mode (`cpu` is the baseline's copier)."""
    return "baseline" if mode == "cpu" else mode
