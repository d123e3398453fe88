"""migsim.limits: one definition of every range, read by the engine, the CLI and the schema."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import pytest

from migsim import limits, pipeline
from migsim.studies.compaction import run_compaction
from migsim.studies.throughput import run_throughput

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def test_the_schema_states_the_limits():
    assert limits.schema_disagreements(pipeline.load_schema(SCHEMA)) == []


def test_a_changed_bound_is_found():
    schema = pipeline.load_schema(SCHEMA)
    schema["properties"]["throughput"]["properties"]["trials"]["maximum"] = 10000
    schema["$defs"]["folio_size"]["enum"].append("4M")
    found = limits.schema_disagreements(schema)
    assert len(found) == 2
    assert found[0].startswith("throughput.trials:") and found[1].startswith("$defs.folio_size")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, True, "0.5", None, -0.01, 1.01])
def test_fail_rate_rejects(bad):
    with pytest.raises(limits.LimitError, match=r"^fail_rate: must be a number in \[0, 1\], got"):
        limits.FAIL_RATE.check(bad, "fail_rate")


def test_integer_limits_and_the_platform_top():
    assert limits.CHANNELS.check(16, "--channels", hi=16) == 16
    assert limits.CHANNELS.check(4.0, "c") == 4
    with pytest.raises(limits.LimitError, match=r"^--channels: .* 1\.\.16 \(why\), got 17$"):
        limits.CHANNELS.check(17, "--channels", hi=16, why="why")
    for bad in (2.5, 0, 257, math.nan):
        with pytest.raises(limits.LimitError, match="1..256"):
            limits.CHANNELS.check(bad, "c")
    with pytest.raises(limits.LimitError, match=r"\[0, 1\)"):
        limits.FREE_RATIO.check(1.0, "r")
    with pytest.raises(limits.LimitError, match=r"\(0, 100\]"):
        limits.KNEE_PCT.check(0, "k")


def test_sizes():
    assert limits.TOTAL_BYTES.parse("1T", "t") == 1 << 40
    assert limits.NODE_BYTES.parse("62.5G", "n") == 32000 << 21
    for bad in ("2T", "6000", "0", "x", -4096):
        with pytest.raises(limits.LimitError, match="^t: must be a size from 4K to 1T"):
            limits.TOTAL_BYTES.parse(bad, "t")
    assert limits.check_folio_size("1G", "f") == 1 << 30
    with pytest.raises(limits.LimitError, match="^f: must be one of 4K, .*, 2M, 1G"):
        limits.check_folio_size("4M", "f")


def test_the_engine_reads_the_same_limits(platform):
    with pytest.raises(ValueError, match=r"^total_bytes: must be a size from 4K to 1T"):
        run_throughput(platform, mode="baseline", folio_size=4096, total_bytes=2 << 40)
    with pytest.raises(ValueError, match=r"^fail_rate: must be a number in \[0, 1\], got nan"):
        run_throughput(platform, mode="dma", folio_size=4096, fail_rate=math.nan)
    with pytest.raises(ValueError, match=r"^channels: .* 1\.\.16 \(the DMA channels"):
        run_throughput(platform, mode="dma", folio_size=4096, channels=17)
    with pytest.raises(ValueError, match=r"^folio_size: must be one of"):
        run_throughput(platform, mode="baseline", folio_size=4 << 20, total_bytes=8 << 20)
    with pytest.raises(ValueError, match=r"^fail_rate: must be a number in \[0, 1\], got nan"):
        run_compaction(platform, mode="dma", node_bytes=64 << 20, allocations=4,
                       fail_rate=math.nan)  # fmt: skip


def test_memory_refused_before_allocating(platform, monkeypatch):
    monkeypatch.setenv("MIGSIM_MEMORY_AVAILABLE", str(1 << 30))
    with pytest.raises(ValueError, match=r"^total_bytes: .* needs about 352\.3 GB .* 1\.1 GB"):
        run_throughput(platform, mode="baseline", folio_size=4096, total_bytes=1 << 40,
                       batch_limit=1)  # fmt: skip
    with pytest.raises(ValueError, match=r"^node_bytes: .* 10T node needs about"):
        run_compaction(platform, mode="baseline", node_bytes=10 << 40, allocations=4)


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("mode", ["baseline", "dma", "mt"])
@pytest.mark.parametrize(
    ("total", "folio", "batch", "trials"), [(256 << 20, 4096, 1, 1), (4 << 30, 4096, 64, 5)]
)
def test_throughput_estimate_covers_the_measured_peak(
    quiet_platform, mode, total, folio, batch, trials
):
    """The estimate (less its fixed base) covers the peak numpy and Python allocate, and is
    at most three times it: a useful estimate, neither optimistic nor wildly off."""

    def run():
        run_throughput(quiet_platform, mode=mode, folio_size=folio, total_bytes=total,
                       batch_limit=batch, trials=trials)  # fmt: skip

    run()  # the first call fills caches; the peak of interest is a run's own
    peak = _peak(run)
    est = limits.throughput_memory(total, folio, batch, trials) - limits.MEMORY_BASE_BYTES
    assert peak <= est <= 3 * peak, (peak, est)


def test_one_large_batch_needs_little(quiet_platform):
    peak = _peak(lambda: run_throughput(quiet_platform, mode="dma", folio_size=4096,
                                        total_bytes=1 << 30, trials=1))  # fmt: skip
    assert peak <= limits.throughput_memory(1 << 30, 4096, 1 << 18, 1)


def test_compaction_estimate_covers_the_measured_peak(quiet_platform):
    node = 2 << 30
    peak = _peak(lambda: run_compaction(quiet_platform, mode="baseline", node_bytes=node,
                                        allocations=64))  # fmt: skip
    est = limits.compaction_memory(node) - limits.MEMORY_BASE_BYTES
    assert peak <= est <= 2 * peak, (peak, est)
