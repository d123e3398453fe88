"""The gate of the host tests (tests/host_gate.py) and the skip of the Slurm tests: a plain
`pytest` as root leaves the kernel settings alone, CI runs the host tests, and a missing
Slurm prerequisite is a skip with its reason (a failure in CI)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from host_gate import ENV_OPT_IN, changed_settings, host_tests_enabled

TESTS = Path(__file__).parent


@pytest.mark.parametrize(
    "env,euid,markexpr,option,enabled",
    [
        ({}, 0, "", False, False),  # a plain pytest as root: off
        ({}, 1000, "", False, False),
        ({"CI": "true"}, 0, "", False, True),  # CI as root: on
        ({"CI": "true"}, 1000, "", False, False),  # CI without root cannot run them
        ({"CI": "false"}, 0, "", False, False),
        ({}, 0, "", True, True),  # --host
        ({ENV_OPT_IN: "1"}, 0, "", False, True),
        ({ENV_OPT_IN: "0"}, 0, "", False, False),
        ({}, 0, "host", False, True),
        ({}, 0, "host and not slow", False, True),
        ({}, 0, "slow or host", False, True),
        ({}, 0, "not host", False, False),
        ({}, 0, "not slow", False, False),
        ({}, 0, "hostname", False, False),  # a different marker
    ],
)
def test_host_tests_enabled(env, euid, markexpr, option, enabled):
    got, why = host_tests_enabled(env, euid, markexpr, option)
    assert got is enabled
    assert why  # always says why (the skip reason when off)


def test_skip_reason_says_how_to_opt_in():
    _, why = host_tests_enabled({}, 0)
    assert "--host" in why and ENV_OPT_IN in why and "-m host" in why


def test_changed_settings_names_each_change():
    before = {"/a": "1", "/b": "always", "/c": "x"}
    after = {"/a": "1", "/b": "never", "/d": "y"}
    assert changed_settings(before, after) == [
        "/b: 'always' -> 'never'",
        "/c: 'x' -> '<absent>'",
        "/d: '<absent>' -> 'y'",
    ]
    assert changed_settings(before, dict(before)) == []


def test_the_per_test_check_reads_what_snapshot_settings_reads():
    """tests/conftest.py's _settings_now (the check around every test) is
    probe.snapshot_settings() with its paths listed once: the same files, the same text (the
    second snapshot: another process on a shared machine may change a setting meanwhile)."""
    from conftest import _settings_now

    from migsim.host.probe import snapshot_settings

    before = snapshot_settings()
    now = _settings_now()
    assert now, "no kernel setting readable"
    assert now in (before, snapshot_settings())


def test_plain_pytest_skips_the_host_tests_and_prints_why():
    """The host tests of test_host_safety.py, run by a plain pytest outside CI: each one is
    skipped with the reason in the summary; the guard's stand-in-file tests still run."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", ENV_OPT_IN)}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         str(TESTS / "test_host_safety.py")],
        capture_output=True, text=True, env=env, cwd=TESTS.parent, timeout=300,
    )  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    # 5 probe runs: one plain, three interrupted by an exception, one by SIGTERM
    assert "5 skipped" in out, out[-3000:]
    reasons = re.findall(r"SKIPPED \[(\d+)\] \S+: host test: changes kernel settings", out)
    assert sum(map(int, reasons)) == 5, out[-3000:]
    assert "3 passed" in out, out[-3000:]


def test_missing_slurm_plugin_skips_with_reason_outside_ci(monkeypatch):
    import test_slurm

    monkeypatch.setitem(sys.modules, "snakemake_executor_plugin_slurm", None)  # import fails
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="snakemake-executor-plugin-slurm"):
        test_slurm._skip_or_fail_without_slurm()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the Slurm test"):
        test_slurm._skip_or_fail_without_slurm()


def test_host_lock_is_not_taken_again_under_an_ancestors_flock(tmp_path):
    """Under ``flock LOCK pytest`` the lock is held by an ancestor: host_lock() must not wait
    for it (a second open file's flock would wait for ever)."""
    from host_gate import host_lock, lock_held_by_ancestor

    path = str(tmp_path / "host.lock")
    assert not lock_held_by_ancestor(path)  # no such file yet
    with host_lock(path):
        assert lock_held_by_ancestor(path)
        with host_lock(path):  # returns at once; a deadlock here would hang the test
            pass
    assert not lock_held_by_ancestor(path)
