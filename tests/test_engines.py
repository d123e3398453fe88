"""The two engines of compact_zone()'s allocation loop give the same run: the compiled loop
(migsim.kernel._compact, _compact.c) and the Python reference (migsim.kernel.compaction).

"The same" is everything a later call or a costing can observe: every counter, every
migrate_pages() call's log row and the marks between them, every frame's state, every page's
content tag, the pageblock arrays, the pcp list and the zone's compaction state (the sha256
of tests/test_reference_digest.py over all of it), plus zone.check() after the compiled run:
at full scale (the default 250 GB run) and on random small zones (hypothesis, example counts
from the settings profile). Then how the engine is chosen, and what a missing build does.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_reference_digest import compactor_counters, run_digest, small, with_unmovable

from migsim.host.twin import TwinCompactor
from migsim.kernel import compaction
from migsim.kernel.compaction import ENGINE_ENV, Compactor
from migsim.kernel.fragment import FragmentConfig, fragment
from migsim.kernel.zone import Zone

needs_c = pytest.mark.skipif(compaction._compact is None, reason="_compact is not built")


@pytest.fixture(autouse=True)
def _no_engine_env(monkeypatch):
    monkeypatch.delenv(ENGINE_ENV, raising=False)


def _run(
    make_zone,
    engine: str,
    *,
    order,
    allocations,
    cluster_max=32,
    capture="task",
    first=False,
    check=True,
):
    """One run on a new zone: counters, log, digest, and the zone.check() failure (or None)."""
    z = make_zone()
    c = Compactor(z, cluster_max=cluster_max, capture=capture, engine=engine)
    assert c.engine == engine
    if first:
        c.compact_memory()
    for _ in range(allocations):
        c.alloc_pages_node(order)
    log = c.log()
    out = {
        "counters": compactor_counters(c),
        "pages": log.pages.astype(np.int64).copy(),
        "work": log.work.astype(np.int64).copy(),
        "tail": log.tail.copy(),
        "marks": log.marks.astype(np.int64).copy(),
        "digest": run_digest(compactor_counters(c), log, z),
    }
    out["check"] = None
    if check and engine == "c":  # (the Python loop's zones: the property tests)
        try:
            z.check()
        except AssertionError as e:
            out["check"] = str(e) or "zone.check() failed"
    return out


def _assert_same(py: dict, cc: dict) -> None:
    assert cc["counters"] == py["counters"]
    for name in ("pages", "work", "tail", "marks"):
        assert np.array_equal(cc[name], py[name]), f"log.{name} differs"
    assert cc["digest"] == py["digest"]  # the zone state too
    assert cc["check"] is None


@needs_c
@pytest.mark.slow
def test_the_full_scale_run_is_the_same_on_both_engines():
    """The default run (250 GB node fragmented 50% even, 16384 order-9 allocations): the same
    49149 calls, counters, log, marks and zone from both. (zone.check() after the compiled
    full-scale run: tests/test_full_scale.py, whose shared run is the default engine's.)"""

    def make_zone():
        return fragment(FragmentConfig(), node_cpus=64)

    py = _run(make_zone, "python", order=9, allocations=16384)
    cc = _run(make_zone, "c", order=9, allocations=16384, check=False)
    assert len(py["pages"]) == 49149 and py["counters"]["alloc_success"] == 16384
    _assert_same(py, cc)


@needs_c
@given(
    mb=st.sampled_from([8, 16, 32]),
    pattern=st.sampled_from(["even", "random", "clustered"]),
    free_ratio=st.sampled_from([0.1, 0.25, 0.5, 0.75]),
    seed=st.integers(0, 50),
    order=st.integers(0, 10),
    allocations=st.integers(1, 40),
    cluster_max=st.sampled_from([1, 3, 8, 32, 100]),
    pcp=st.sampled_from([None, (0, 1), (7, 2), (64, 8)]),
    unmovable=st.booleans(),
    capture=st.sampled_from(["task", "kthread"]),
    first=st.booleans(),
    skip_window=st.sampled_from([None, 1, 2, 3]),
)
def test_random_small_runs_are_the_same_on_both_engines(
    mb,
    pattern,
    free_ratio,
    seed,
    order,
    allocations,
    cluster_max,
    pcp,
    unmovable,
    capture,
    first,
    skip_window,
):
    """Random small zones and parameters (every order, COMPACT_CLUSTER_MAX from 1, pcp lists
    that overflow at once or hold a few batches, unmovable pages and pageblocks for the async
    scanner's skip_on_failure and suitable_migration_source, kernel-thread captures, a
    compact_memory first): identical counters, logs, marks and zone state; the zone passes
    zone.check() after the compiled run. The compiled loop runs with the migration scanner's
    skip window (MIGRATE_SKIP_WINDOW_BLOCKS, passed to it per call) drawn from 1..3 pageblocks
    or the default, against the Python loop at the default, so a skip over the zone's 4..16
    pageblocks takes several windows in the C code and must still give the same run."""
    kw = {} if pcp is None else {"pcp_high": pcp[0], "pcp_batch": pcp[1]}

    def make_zone() -> Zone:
        z = small(mb, pattern=pattern, free_ratio=free_ratio, seed=seed, **kw)
        return with_unmovable(z, seed) if unmovable else z

    args = {
        "order": order,
        "allocations": allocations,
        "cluster_max": cluster_max,
        "capture": capture,
        "first": first,
    }
    py = _run(make_zone, "python", **args)
    window = compaction.MIGRATE_SKIP_WINDOW_BLOCKS if skip_window is None else skip_window
    with mock.patch.object(compaction, "MIGRATE_SKIP_WINDOW_BLOCKS", window):
        cc = _run(make_zone, "c", **args)
    _assert_same(py, cc)


@needs_c
def test_the_compiled_loop_takes_the_skip_window_at_each_call(monkeypatch):
    """The migration scanner's skip window is the module's MIGRATE_SKIP_WINDOW_BLOCKS read
    at each compact_zone() (not a constant compiled in): a window of 0 pageblocks reaches the
    C loop, which refuses it."""
    monkeypatch.setattr(compaction, "MIGRATE_SKIP_WINDOW_BLOCKS", 0)
    c = Compactor(small(8, pattern="even", free_ratio=0.5, seed=1), engine="c")
    with pytest.raises(ValueError, match=r"migrate_skip_window: must be >= 1 pageblock"):
        c.compact_memory()


# -- choosing the engine ---------------------------------------------------------------------
@needs_c
def test_the_compiled_loop_runs_by_default_and_the_python_one_on_request(monkeypatch):
    """Default: the compiled loop runs every compact_zone() (counted by a wrapper of the
    module); engine="python" or MIGSIM_ENGINE=python: it never runs."""
    calls = []
    real = compaction._compact

    class Spy:
        CONSTANTS = real.CONSTANTS

        @staticmethod
        def compact_zone_loop(*args):
            calls.append(1)
            return real.compact_zone_loop(*args)

    monkeypatch.setattr(compaction, "_compact", Spy)
    z = small(16)
    c = Compactor(z)
    assert c.engine == "c"
    for _ in range(3):
        c.alloc_pages_node(9)
    assert len(calls) == c.vmstat["compact_stall"] > 0
    calls.clear()
    for make in (
        lambda: Compactor(small(16), engine="python"),
        lambda: (monkeypatch.setenv(ENGINE_ENV, "python"), Compactor(small(16)))[1],
    ):
        c = make()
        assert c.engine == "python"
        for _ in range(3):
            c.alloc_pages_node(9)
        assert c.vmstat["compact_stall"] > 0 and calls == []


@needs_c
def test_trace_and_subclasses_that_replace_a_step_run_the_python_loop():
    """The tracepoint marks of trace=True and a subclass's own scanner (the host twin's
    TwinCompactor) are Python: such a Compactor runs the Python loop even when c is asked."""
    assert Compactor(small(8), trace=True, engine="c").engine == "python"

    class OwnScanner(Compactor):
        def isolate_freepages_block(self, cc, start_pfn, end_pfn, stride=1):
            return super().isolate_freepages_block(cc, start_pfn, end_pfn, stride)

    assert OwnScanner(small(8), engine="c").engine == "python"
    assert TwinCompactor.isolate_freepages_block is not Compactor.isolate_freepages_block
    assert Compactor(small(8), engine="c").engine == "c"


@needs_c
def test_each_compact_zone_counts_the_loop_that_ran_it():
    """compaction.LOOP_RUNS counts compact_zone() loops per engine that ran them (what
    tests/engines.py records for every test): a step replaced on the instance or by a subclass
    moves a Compactor asked for c to the Python loop, and the count says so."""
    from conftest import python_only_c_run

    def ran(make):
        before = dict(compaction.LOOP_RUNS)
        c = make()
        for _ in range(3):
            c.alloc_pages_node(9)
        assert c.vmstat["compact_stall"] > 0
        return {e: compaction.LOOP_RUNS[e] - before[e] for e in compaction.ENGINES}

    class OwnScanner(Compactor):
        def isolate_freepages_block(self, cc, start_pfn, end_pfn, stride=1):
            return super().isolate_freepages_block(cc, start_pfn, end_pfn, stride)

    def wrapped():
        c = Compactor(small(16), engine="c")
        c.isolate_migratepages = c.isolate_migratepages  # a test's wrapper on the instance
        return c

    stalls = ran(lambda: Compactor(small(16), engine="c"))
    assert stalls["c"] > 0 and stalls["python"] == 0
    for make in (lambda: OwnScanner(small(16), engine="c"), wrapped):
        r = ran(make)
        assert r["c"] == 0 and r["python"] > 0

    class Report:
        def __init__(self, **ran):
            self.user_properties = [("loop_engine_ran", ran)]

    assert python_only_c_run(Report(asked="c", c=0, python=2))
    assert not python_only_c_run(Report(asked="c", c=1, python=2))
    assert not python_only_c_run(Report(asked="python", c=0, python=2))
    assert not python_only_c_run(Report(asked="c", c=0, python=0))


@pytest.mark.parametrize(
    ("engine", "env", "msg"),
    [
        ("C", None, "engine: must be one of c, python, got 'C'"),
        (None, "fast", "MIGSIM_ENGINE: must be one of c, python, got 'fast'"),
    ],
)
def test_a_bad_engine_name_is_one_line_naming_where_it_came_from(monkeypatch, engine, env, msg):
    if env is not None:
        monkeypatch.setenv(ENGINE_ENV, env)
    with pytest.raises(ValueError) as e:
        Compactor(small(8), engine=engine)
    assert str(e.value) == msg


def test_without_the_extension_python_runs_with_one_warning(monkeypatch, capsys):
    """A missing build: the default falls back to the Python loop with one line on stderr
    (once per process); asking for c is a one-line error."""
    monkeypatch.setattr(compaction, "_compact", None)
    monkeypatch.setattr(compaction, "_MISSING_WARNED", False)
    z = small(8)
    assert Compactor(z).engine == "python"
    assert Compactor(z).engine == "python"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not built" in err and "Python reference" in err
    with pytest.raises(ValueError, match=r"^engine: the compiled engine c is not built") as e:
        Compactor(z, engine="c")
    assert "\n" not in str(e.value)


def test_a_stale_build_fails_at_import(monkeypatch):
    """The compiled loop's constants must be the Python module's (a build from another
    version of the source would otherwise run with other states or work columns)."""

    class Stale:
        CONSTANTS = {**(compaction._compact.CONSTANTS if compaction._compact else {}), "LRU": 7}

    monkeypatch.setattr(compaction, "_compact", Stale)
    with pytest.raises(ImportError, match=r"constants differ: LRU\); rebuild it"):
        compaction._check_compiled_constants()


def test_a_build_of_another_source_fails_at_import(monkeypatch):
    """A build whose compiled-in sha256 is not that of the _compact.c beside it (the source
    edited, the extension not rebuilt) fails at import, however equal its constants."""

    class Old:
        CONSTANTS = compaction._compact.CONSTANTS if compaction._compact else {}
        SOURCE_SHA256 = "0" * 64

    if not Old.CONSTANTS:
        pytest.skip("migsim.kernel._compact is not built (its constants are the C file's)")
    monkeypatch.setattr(compaction, "_compact", Old)
    with pytest.raises(ImportError, match=r"another version of _compact.c \(its sha256"):
        compaction._check_compiled_constants()


@needs_c
def test_the_build_is_of_the_source_beside_it():
    """setup.py compiles the sha256 of _compact.c in; the built module carries it."""
    src = Path(compaction.__file__).with_name("_compact.c")
    assert hashlib.sha256(src.read_bytes()).hexdigest() == compaction._compact.SOURCE_SHA256


@needs_c
def test_the_built_loop_has_this_modules_constants():
    """Every constant the C code uses is the Python module's, each under its own name."""
    compaction._check_compiled_constants()
    assert compaction._compact.CONSTANTS["W_DRAIN"] == compaction.W_DRAIN
    assert compaction._compact.CONSTANTS["MIGRATE_ASYNC"] == compaction.MIGRATE_ASYNC


def test_the_compiled_loop_is_built_where_ci_installed_it():
    """`pip install -e .` builds the extension (setup.py, optional=True: a failed build is
    only a warning there); CI must run the compiled loop, so a missing build fails here."""
    if os.environ.get("CI") != "true":
        pytest.skip("outside CI a checkout may run unbuilt (the Python loop, with a warning)")
    assert compaction._compact is not None, "migsim.kernel._compact was not built"
