"""The one-CPU timeline: idle sleeps, fair share against a CPU hog, wake-up preemption,
context switches, hog iterations."""

from __future__ import annotations

import numpy as np
import pytest

from migsim.timeline import cpu_runs, run_timeline


@pytest.fixture
def p(platform):
    return platform.replace(
        sched__ctx_switch_us=2.0,
        sched__completion_irq_us=5.0,
        sched__slice_us=3000.0,
        sched__hog_clock_ghz=2.0,
        sched__hog_iters_per_cycle=1.0,
    )


def test_cpu_runs_join_bursts_without_a_sleep():
    runs = cpu_runs(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 5.0, 0.0]))
    assert list(runs) == [3.0, 7.0]
    with pytest.raises(ValueError, match="one entry more"):
        cpu_runs(np.array([1.0]), np.array([1.0]))


def test_alone_a_sleep_is_idle(p):
    t = run_timeline(np.array([0.010, 0.020, 0.030]), np.array([0.004, 0.006]), p, busy=False)
    assert t.wall_s == pytest.approx(0.070)
    assert t.sys_s == pytest.approx(0.060) and t.idle_s == pytest.approx(0.010)
    assert t.user_s == 0.0 and t.hog_iterations is None
    assert t.sys_pct + t.idle_pct == pytest.approx(100.0)


def test_against_a_hog_without_sleeps_the_cpu_is_shared(p):
    work = 0.600  # 200 slices of 3 ms
    t = run_timeline(np.array([work]), np.array([]), p, busy=True)
    switches = 2 * 200
    assert t.context_switches == switches
    assert t.sys_s == pytest.approx(work + switches * 2e-6)
    assert t.user_s == pytest.approx(work)  # fair share: as much as compaction
    assert t.wall_s == pytest.approx(2 * work + switches * 2e-6)
    assert t.hog_iterations == round(2.0e9 * work)
    assert t.idle_s == 0.0


def test_sleeps_go_to_the_hog(p):
    bursts = np.full(101, 100e-6)  # 100 us of work between 100 sleeps of 50 us
    sleeps = np.full(100, 50e-6)
    t = run_timeline(bursts, sleeps, p, busy=True)
    work, slept = 101 * 100e-6, 100 * 50e-6
    # in each sleep: two switches (4 us) and the completion irq (5 us) on the hog's time
    hog = work + 100 * (50e-6 - 9e-6)
    assert t.hog_run_s == pytest.approx(hog)
    assert t.user_s == pytest.approx(hog + 100 * 5e-6)
    assert t.sys_s == pytest.approx(work + 200 * 2e-6)
    assert t.wall_s == pytest.approx(2 * work + slept)
    assert t.hog_iterations == round(2.0e9 * hog)
    alone = run_timeline(bursts, sleeps, p, busy=False)
    assert alone.idle_s == pytest.approx(slept)
    # offloading while a hog runs: the hog gets more than the compaction's share
    assert t.user_s > t.compaction_cpu_s


def test_a_sleep_shorter_than_the_switches_gives_the_hog_nothing(p):
    t = run_timeline(np.array([1e-3, 1e-3]), np.array([1e-6]), p, busy=True)
    assert t.hog_run_s == pytest.approx(2e-3)  # only its fair share


def test_a_busy_cpu_does_not_pay_the_idle_exit(p):
    """The idle-state exit inside each wake-up (wake_s) is idle time for a lone task; with
    the hog running there is no idle state, so each sleep is that much shorter."""
    bursts = np.full(11, 100e-6)
    sleeps = np.full(10, 50e-6)
    wake = np.full(10, 10e-6)
    alone = run_timeline(bursts, sleeps, p, busy=False, wake_s=wake)
    assert alone.idle_s == pytest.approx(10 * 50e-6)  # alone, the whole latency is idle
    busy = run_timeline(bursts, sleeps, p, busy=True, wake_s=wake)
    ref = run_timeline(bursts, sleeps, p, busy=True)
    assert busy.sleep_s == pytest.approx(10 * 40e-6)
    assert busy.hog_run_s == pytest.approx(ref.hog_run_s - 10 * 10e-6)
    assert busy.wall_s == pytest.approx(ref.wall_s - 10 * 10e-6)
    assert busy.nr_sleeps == ref.nr_sleeps == 10
