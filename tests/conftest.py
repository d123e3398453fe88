"""Shared fixtures: the committed platform, a small deterministic RNG, the full-scale run; the
gate of the tests that touch the running kernel (tests/host_gate.py) and the check that every
test leaves the kernel settings as it found them; the hypothesis settings profiles."""

from __future__ import annotations

import copy
import functools
import os
import random
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

# One BLAS thread in every test process and in what it starts (pytest-xdist's workers, the
# snakemake server and its jobs, the CLI subprocesses inherit the environment), set before
# numpy loads OpenBLAS: with its default of one thread per CPU, the two workers of `pytest -n
# 2` on a 2-core machine run 2 x 2 BLAS threads that spin-wait for each other.
# tests/test_intervals.py and tests/test_throughput.py alone: 29.3 -> 11.5 CPU s (pytest -n 0,
# load 3). `migsim calibrate` fits with one thread too (cli/calibrate.py). An explicit value
# in the environment is kept.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from migsim.cost.platform import DEFAULT_PLATFORM, load_platform  # noqa: E402
from migsim.kernel.zone import Zone  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from host_gate import changed_settings, host_tests_enabled  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--host",
        action="store_true",
        default=False,
        help="run the tests marked host (they change kernel settings or trigger compaction)",
    )


def _host_tests_enabled(config) -> tuple[bool, str]:
    return host_tests_enabled(
        dict(os.environ), os.geteuid(), config.getoption("markexpr"), config.getoption("--host")
    )


# Parallel runs (pytest-xdist). pyproject's addopts pass `-n auto --dist loadgroup`; the hook
# below decides what "auto" means: two or more workers (xdist's own count: the CPUs) for the
# whole suite or a directory, none (an ordinary serial run, no worker start-up) where
# - the arguments name a file or a test (`pytest tests/test_zone.py`, `path::test`): a
#   developer's run of a few tests, and benchmarks/mutation.py's runs of one mutant;
# - the host tests run (--host, -m host, MIGSIM_HOST_TESTS=1, or CI=true as root unless -m
#   deselects them): they change kernel settings that the check below reads around *every*
#   test, so nothing may run beside them (.ci/run runs them in a second, serial pytest).
# An explicit `-n N` is taken as given; `-n 0` (or `-p no:xdist` with `-o addopts=-ra`) is serial.
def _names_a_file_or_test(arg: str) -> bool:
    return "::" in arg or not Path(arg.split("::")[0]).is_dir()


def _host_tests_run(config) -> bool:
    enabled, _ = _host_tests_enabled(config)
    return enabled and "not host" not in (config.getoption("markexpr") or "")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """Workers for `-n auto`: 0 for a file or test selection and for a run with host tests,
    else xdist's default (None: the CPU count)."""
    if any(_names_a_file_or_test(a) for a in config.args) or _host_tests_run(config):
        return 0
    return None


def _xdist_group(item, shared: dict[str, str]) -> str:
    """The worker group of a test under --dist loadgroup: every test marked host in one group
    (one worker, in order: they share the kernel and tests/host_gate.py's lock); every test of
    a module that uses a shared session fixture in that fixture's group (`shared`:
    _shared_groups); every other test with the rest of its module, so that module-scoped
    fixtures (a pipeline run into a shared output directory, a Slurm cluster, a simulation)
    are built once, in one worker, and never used by two workers at once."""
    if item.get_closest_marker("host") is not None:
        return "host"
    unit = _unit(item)
    return shared.get(unit, unit)


def _unit(item) -> str:
    """The test's module, or module::function for a module of _SPLIT_BY_FUNCTION."""
    module = item.nodeid.split("::", 1)[0]
    if module in _SPLIT_BY_FUNCTION:
        return f"{module}::{getattr(item, 'originalname', item.name)}"
    return module


# Session fixtures of this file that take seconds to build: each pytest-xdist worker builds
# its own, so every module (every function of a _SPLIT_BY_FUNCTION module) with a test that
# uses one goes into one group named after it (the first listed, for a module that uses
# several), and one worker builds it once: the full-scale run (~3 CPU s: test_full_scale,
# test_kernel_full_scale, test_reference_digest, test_compaction_reproduce), the headless
# Chromium (test_browser, test_whatif_browser) and the fit of the published throughput table
# (reference_fit, ~2.4 CPU s a fit: test_throughput, test_cli_throughput, test_calibrate_check,
# test_readme_commands' migsim commands).
_SHARED_FIXTURES = ("full_scale", "browser", "reference_fit")


def _shared_groups(items) -> dict[str, str]:
    """Module (or module::function, _unit) -> the group of the first shared session fixture
    (_SHARED_FIXTURES) that one of its tests (not marked host) uses."""
    out: dict[str, str] = {}
    for item in items:
        if item.get_closest_marker("host") is not None:
            continue
        used = getattr(item, "fixturenames", ())
        for name in _SHARED_FIXTURES:
            if name in used:
                out.setdefault(_unit(item), name)
                break
    return out


# Modules whose groups are their test functions (a parametrized function is one group): their
# module fixtures are cheap to build twice (a 64 MB simulation, a workflow copy), and as one
# group they would be the run's long tail on one worker.
_SPLIT_BY_FUNCTION = {"tests/test_readme_commands.py"}


# The order in which pytest-xdist hands the groups to the workers (--dist loadgroup; its
# default --loadscope-reorder, which sorts them by their number of tests, is switched off in
# pytest_configure): the wall time of a parallel run is the longest worker's, so the long
# groups go first and the short ones fill the end on both workers (longest first). One
# exception: the modules that read the shared smoke run (pipeline_util.smoke_run: one build for
# every worker, under a file lock) would leave a second worker waiting for the first one's
# build; so the longest of them goes first (its worker builds the run), then groups that do
# not need it for about the build's time, then the rest, longest first.
# Seconds of each group's tests on one worker of a parallel run (`pytest -n 2` without the
# Slurm tests on the idle 2-core machine, the mean of two runs at a48f516, as
# benchmarks/suite_timeline.py prints them; reference_fit: its four modules' sum less the
# three fits they share now, 3 x 2.4 s). They only order the queue: a stale number slows the
# run, it changes no result. A group not listed counts _UNLISTED_S a test.
_GROUP_SECONDS = {
    "reference_fit": 25.5,  # test_readme_commands' migsim commands 11.3, test_throughput 11.7, ...
    "tests/test_pipeline_dryrun.py": 24.1,  # with the smoke run's build
    "browser": 11.6,  # test_browser 7.1, test_whatif_browser 4.5: one Chromium
    "tests/test_pipeline_e2e.py": 9.2,
    "tests/test_rerun_keeps_results.py": 8.4,  # three reruns in a copy of the smoke run
    "full_scale": 8.2,  # test_compaction_reproduce 4.7, test_reference_digest 2.2, ...: one run
    "tests/test_mmtests.py": 7.6,
    "tests/test_engines.py": 7.0,  # the full-scale run on both engines
    "tests/test_figures.py": 5.6,
    "tests/test_probe.py": 4.7,
    "tests/test_bad_inputs.py": 4.4,
    "tests/test_compaction_cli.py": 3.8,
    "tests/test_plugin_study.py": 3.2,
    "tests/test_readme_commands.py::test_snakemake_command": 2.7,
    "tests/test_engine_hand_cases.py": 2.6,
    "tests/test_tags.py": 2.0,
    "tests/test_host_gate.py": 1.5,
    "tests/test_trace.py": 1.5,
    "tests/test_compaction_properties.py": 1.4,
    "tests/test_whatif_pipeline.py": 1.4,
    "tests/test_intervals.py": 1.4,
    "tests/test_startup.py": 1.2,
    "tests/test_whatif.py": 0.9,
    "tests/test_migration_scanner_reference.py": 0.9,
}
# Under HYPOTHESIS_PROFILE=thorough (what CI runs: 2,000 examples a property test instead of
# 100) the modules with property tests take far longer, and one of them longer than any other
# group: their CPU seconds in a serial derandomized run of the five (-n 0, a48f516, load ~5;
# their wall doubled under that load).
_THOROUGH_GROUP_SECONDS = {
    "tests/test_tags.py": 61.6,  # one property test
    "tests/test_compaction_properties.py": 36.9,
    "tests/test_migration_scanner_reference.py": 20.4,
    "tests/test_engines.py": 19.4,
    "tests/test_migrate.py": 3.9,
}
if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "thorough":
    _GROUP_SECONDS = {**_GROUP_SECONDS, **_THOROUGH_GROUP_SECONDS}
_UNLISTED_S = 0.02
_SMOKE_BUILD_S = 12.0  # the shared smoke run's build on one worker beside another (idle)


def _group_of(item) -> str:
    return item.get_closest_marker("xdist_group").args[0]


def _reads_smoke_run(path: Path, cache: dict = {}) -> bool:  # noqa: B006 (a per-process cache)
    if path not in cache:
        cache[path] = "smoke_run(" in path.read_text()
    return cache[path]


def _queue_order(items) -> list[str]:
    """The groups of `items` in the order described above (ties by name: deterministic)."""
    tests: dict[str, int] = {}
    smoke: set[str] = set()
    for item in items:
        group = _group_of(item)
        tests[group] = tests.get(group, 0) + 1
        if group != "host" and _reads_smoke_run(Path(item.fspath)):
            smoke.add(group)

    def cost(group: str) -> float:
        return _GROUP_SECONDS.get(group, _UNLISTED_S * tests[group])

    longest = sorted((g for g in tests if g != "host"), key=lambda g: (-cost(g), g))
    order = [g for g in longest if g in smoke][:1]
    filled = 0.0
    for g in longest:
        if filled >= _SMOKE_BUILD_S:
            break
        if g not in smoke:
            order.append(g)
            filled += cost(g)
    order += [g for g in longest if g not in order]
    return order + (["host"] if "host" in tests else [])


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(config, items):
    shared = _shared_groups(items)
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(_xdist_group(item, shared)))
    if getattr(config, "workerinput", None) is not None:
        # In a worker: the collection in the order of the groups' queue (_queue_order). Every
        # worker sorts the same collection the same way, as pytest-xdist requires.
        rank = {g: k for k, g in enumerate(_queue_order(items))}
        items.sort(key=lambda i: rank[_group_of(i)])
    enabled, why = _host_tests_enabled(config)
    if enabled:
        return
    skip = pytest.mark.skip(reason=f"host test: {why}")
    for item in items:
        if "host" in item.keywords:
            item.add_marker(skip)


@functools.cache
def _settings_files() -> tuple[str, ...]:
    """probe.settings_paths(), listed once per process: sysfs and procfs files of the running
    kernel, which neither appear nor go away while it runs."""
    from migsim.host.probe import settings_paths

    return tuple(map(str, settings_paths()))


def _settings_now() -> dict[str, str]:
    """probe.snapshot_settings() from the paths listed once (_settings_files): 0.29 -> 0.06
    ms a snapshot, taken twice around each of the ~1,700 tests (tests/test_host_safety.py and
    tests/test_probe.py use snapshot_settings itself)."""
    from migsim.host.probe import read_settings

    return read_settings(_settings_files())


@pytest.fixture(autouse=True)
def _kernel_settings_unchanged(request):
    """As root, compare the THP and compaction settings before and after every test: a host
    test that does not restore them fails; any other test that changes them fails in CI (and
    warns elsewhere: on a shared machine another process may change them meanwhile)."""
    if os.geteuid() != 0:
        yield
        return
    before = _settings_now()
    yield
    changed = changed_settings(before, _settings_now())
    if not changed:
        return
    msg = "kernel settings changed by this test: " + "; ".join(changed)
    if "host" in request.keywords or os.environ.get("CI") == "true":
        pytest.fail(msg)
    warnings.warn(msg, stacklevel=1)


# Example counts of the property tests come from a profile, never from the tests:
# HYPOTHESIS_PROFILE=ci (the default, a quick run) or thorough (what CI runs, .ci/run: at least
# 2,000 examples each). Deadlines are off: the examples build zones of varying size, and a
# wall-clock limit would make the result depend on the machine's load.
# A failure prints how to reproduce it (print_blob: the @reproduce_failure blob; with random
# generation also the seed). In CI (CI=true), and where HYPOTHESIS_DERANDOMIZE=1 (mutation
# testing: every mutant meets the same examples), generation is derandomized: the examples
# follow from each test's own source, so a run is repeatable.
_DERANDOMIZE = os.environ.get("CI") == "true" or os.environ.get("HYPOTHESIS_DERANDOMIZE") == "1"
_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow],
    "print_blob": True,
    "derandomize": _DERANDOMIZE,
}
settings.register_profile("ci", max_examples=100, **_COMMON)
settings.register_profile("thorough", max_examples=2000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Switch off pytest-xdist's reordering of the groups (they go in _queue_order's order).
    Without derandomization, fix hypothesis's seed for the run (a random one unless
    --hypothesis-seed is given) so that the header and a failing run can print it. An xdist
    worker takes the controller's seed (pytest_configure_node), so the printed seed is the run's."""
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: groups in our order
        config.option.loadscopereorder = False
    worker = getattr(config, "workerinput", None)
    if worker is not None and "hypothesis_seed" in worker:
        config.option.hypothesis_seed = worker["hypothesis_seed"]
    elif not _DERANDOMIZE and config.getoption("hypothesis_seed", None) is None:
        config.option.hypothesis_seed = random.SystemRandom().randrange(2**32)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Controller side of pytest-xdist: every worker runs with the run's hypothesis seed."""
    node.workerinput["hypothesis_seed"] = node.config.getoption("hypothesis_seed", None)


def _hypothesis_seed_line(config) -> str:
    if _DERANDOMIZE:
        return "hypothesis: derandomized (CI=true or HYPOTHESIS_DERANDOMIZE=1)"
    seed = config.getoption("hypothesis_seed", None)
    return f"hypothesis seed {seed}: rerun with --hypothesis-seed={seed} to get the same examples"


def pytest_report_header(config):
    return _hypothesis_seed_line(config)


# c runs of tests/engines.py that reached only the Python loop (a step replaced on the
# Compactor or Zone), from the teardown reports (on the xdist controller too)
PYTHON_ONLY_C_RUNS: set[str] = set()


def python_only_c_run(report) -> bool:
    """True for the report of a c run (tests/engines.py) whose compact_zone() calls all ran in
    the Python loop."""
    for key, ran in getattr(report, "user_properties", ()):
        if key == "loop_engine_ran" and ran["asked"] == "c" and ran["c"] == 0 < ran["python"]:
            return True
    return False


def pytest_runtest_logreport(report):
    if report.when == "teardown" and python_only_c_run(report):
        PYTHON_ONLY_C_RUNS.add(report.nodeid.split("@")[0])  # without xdist's group


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus != 0:
        terminalreporter.write_line(_hypothesis_seed_line(config))
    if PYTHON_ONLY_C_RUNS:
        terminalreporter.write_line(
            f"loop engines: {len(PYTHON_ONLY_C_RUNS)} c run(s) reached only the Python loop "
            "(a step replaced on the Compactor or Zone): " + ", ".join(sorted(PYTHON_ONLY_C_RUNS))
        )


@pytest.fixture(scope="session")
def platform():
    """The committed, calibrated platform of the published machine."""
    return load_platform(DEFAULT_PLATFORM)


@pytest.fixture(scope="session")
def quiet_platform(platform):
    """The same platform with the trial-to-trial noise off (exact arithmetic checks)."""
    return platform.replace(noise__trial_sd_frac=0.0)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@dataclass
class FullScale:
    """The published full-scale run, simulated once per test session: the 250 GB node
    fragmented 50% (even pattern), checked, then 16384 order-9 allocations on it."""

    fragmented: dict  # fragment.metrics() of the node before the run
    fragmented_check: str | None  # zone.check()'s failure on the fragmented node, or None
    sim: object  # studies.compaction.Simulation of the run
    zone: Zone  # the zone after the run (the same object, compacted)


def _check_error(zone: Zone) -> str | None:
    try:
        zone.check()
    except AssertionError as e:
        return str(e) or "zone.check() failed"
    return None


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium, one per test run for every browser test (tests/test_browser.py's
    launch_browser: skips where it is missing outside CI; its modules share a worker group)."""
    from test_browser import launch_browser

    yield from launch_browser()


@pytest.fixture(scope="session")
def full_scale(platform) -> FullScale:
    """One full-scale simulation shared by every test that reads it (~2 s, ~0.6 GB)."""
    from migsim.kernel.fragment import FragmentConfig, fragment, metrics
    from migsim.studies.compaction import simulate

    zone = fragment(FragmentConfig(), node_cpus=platform.compaction.node_cpus_count)
    before, err = metrics(zone), _check_error(zone)
    sim = simulate(platform, seed=1, state=zone)
    return FullScale(fragmented=before, fragmented_check=err, sim=sim, zone=zone)


@pytest.fixture(scope="session")
def _reference_fits() -> dict:
    """The results of reference_fit's fits in this process, by their arguments."""
    return {}


def _platform_copy(p):
    """A Platform equal to `p` that shares nothing mutable with it (its meta deep-copied)."""
    from migsim.cost.platform import Platform

    return Platform(p.name, p.as_dict(), copy.deepcopy(p.meta))


def _platform_key(p) -> tuple[str, str, str]:
    """Everything of a Platform a fit reads or hands on: name, values, meta."""
    import json

    return (p.name, json.dumps(p.as_dict(), sort_keys=True),
            json.dumps(p.meta, sort_keys=True, default=repr))  # fmt: skip


@pytest.fixture
def reference_fit(_reference_fits, monkeypatch):
    """migsim.calibrate.throughput.fit_throughput with its results kept for the test session,
    and migsim.calibrate.compaction.fit_compaction (stage 2) likewise, both also for
    `migsim calibrate` run in-process (the module attributes patched for the test): the fits
    of the published tables (~2.4 and ~0.8 CPU s) are the same computations, with the same
    arguments, in four tests (test_throughput, test_cli_throughput, test_calibrate_check and
    the README's `migsim calibrate`), which share one worker (_SHARED_FIXTURES). The fits are
    deterministic (one BLAS thread, this file's first lines), so a kept result is the one the
    call would compute; each call gets a copy (the CLI rebinds fit.platform, and the later
    stages write into platform.meta). A call with other arguments (another name, priors
    replaced) is fitted and kept too; a fit_throughput call with fit_cells (whose table marks
    cells by identity) is always fitted.
    Returns the kept fit_throughput."""
    import dataclasses

    import migsim.calibrate.compaction as compaction
    import migsim.calibrate.throughput as throughput

    real_throughput, real_compaction = throughput.fit_throughput, compaction.fit_compaction

    def fit_throughput(cells, name="fitted", fit_cells=None, priors=None):
        if fit_cells is not None:
            return real_throughput(cells, name, fit_cells, priors=priors)
        replaced = tuple(
            sorted((sec, tuple(sorted(v.items()))) for sec, v in (priors or {}).items())
        )
        key = ("throughput", tuple(cells), name, replaced)
        if key not in _reference_fits:
            _reference_fits[key] = real_throughput(cells, name, priors=priors)
        fit = _reference_fits[key]
        return dataclasses.replace(
            fit, platform=_platform_copy(fit.platform), residuals=fit.residuals.clone(),
            sd=dict(fit.sd),
        )  # fmt: skip

    def fit_compaction(platform, reference_csv_path, **kwargs):
        key = ("compaction", _platform_key(platform), str(reference_csv_path),
               tuple(sorted(kwargs.items())))  # fmt: skip
        if key not in _reference_fits:
            _reference_fits[key] = real_compaction(platform, reference_csv_path, **kwargs)
        fitted, resid = _reference_fits[key]
        return _platform_copy(fitted), resid.clone()

    monkeypatch.setattr(throughput, "fit_throughput", fit_throughput)
    monkeypatch.setattr(compaction, "fit_compaction", fit_compaction)
    return fit_throughput
