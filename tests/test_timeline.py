"""The one-CPU timeline: idle sleeps, fair share against a CPU hog, wake-up preemption,
context switches, hog iterations."""

from __future__ import annotations

import numpy as np
import pytest

from migsim.cost.timeline import cpu_runs, run_timeline


@pytest.fixture
def p(platform):
    return platform.replace(
        sched__ctx_switch_us=2.0,
        sched__completion_irq_us=5.0,
        sched__slice_us=3000.0,
        sched__hog_clock_ghz=2.0,
        sched__hog_iters_per_cycle=1.0,
        # the tests below without interrupt accounting: no tick, the completion charged to
        # the interrupted task (tests of /proc/stat's irq columns at the end)
        sched__tick_irq_us=0.0,
        sched__irq_time_accounting_switch=0,
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
    assert alone.idle_s == pytest.approx(slept)  # tick-sampled: the irq inside is not seen
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


def _cols(t) -> float:
    """Sum of the seven /proc/stat columns (seconds); without idle-task work outside the idle
    state (unaccounted_s) it is the wall time."""
    return t.user_s + t.nice_s + t.sys_s + t.idle_s + t.iowait_s + t.irq_s + t.softirq_s


@pytest.mark.parametrize("busy", [False, True])
@pytest.mark.parametrize("measured", [0, 1])
def test_proc_stat_columns_add_up_to_the_wall_time(p, busy, measured):
    q = p.replace(sched__tick_irq_us=3.0, sched__irq_time_accounting_switch=measured)
    t = run_timeline(np.full(11, 100e-6), np.full(10, 50e-6), q, busy=busy)
    assert _cols(t) == pytest.approx(t.wall_s, rel=1e-12)
    assert t.nice_s == 0.0 and t.iowait_s == 0.0
    assert (t.irq_s + t.softirq_s > 0) == bool(measured)


def test_with_irq_time_accounting_a_completion_is_irq_time_not_idle(p):
    """Alone on its CPU, the completion that ends a sleep (5 us) is irq time taken out of the
    idle time; the tick (1000 Hz x 2 us, half of it softirq) runs only while a task runs."""
    q = p.replace(
        sched__irq_time_accounting_switch=1, sched__tick_hz=1000.0, sched__tick_irq_us=2.0,
        sched__tick_softirq_frac=0.5,
    )  # fmt: skip
    work, slept = 11 * 100e-6, 10 * 50e-6
    t = run_timeline(np.full(11, 100e-6), np.full(10, 50e-6), q, busy=False)
    tick = work * 0.002 / (1 - 0.002)  # the tick stretches the CPU's running time
    assert t.idle_s == pytest.approx(slept - 10 * 5e-6)
    assert t.irq_s == pytest.approx(10 * 5e-6 + tick / 2)
    assert t.softirq_s == pytest.approx(tick / 2)
    assert t.sys_s == pytest.approx(work)
    assert t.wall_s == pytest.approx(work + tick + slept)


@pytest.mark.parametrize("busy", [False, True])
def test_the_idle_tasks_work_after_its_idle_state_is_in_no_column(p, busy):
    """Alone on its CPU, the part of each sleep the idle task runs after tick_nohz_idle_exit
    (3 us of 50) leaves the idle column and shows in none: the seven columns then add up to
    the wall time less it, and it is part of the missing share (100 - user - sys - idle)
    beside irq and softirq (the 5 us completion). Against the hog there is no idle task and
    the argument changes nothing."""
    q = p.replace(sched__irq_time_accounting_switch=1, sched__tick_irq_us=0.0)
    bursts, sleeps = np.full(11, 100e-6), np.full(10, 50e-6)
    t = run_timeline(bursts, sleeps, q, busy=busy, unaccounted_s=np.full(10, 3e-6))
    if busy:
        assert t == run_timeline(bursts, sleeps, q, busy=True)
        return
    assert t.unaccounted_s == pytest.approx(10 * 3e-6)
    assert t.idle_s == pytest.approx(10 * (50e-6 - 5e-6 - 3e-6))
    assert t.irq_s == pytest.approx(10 * 5e-6)
    assert _cols(t) == pytest.approx(t.wall_s - 10 * 3e-6, rel=1e-12)
    missing = 100 - t.user_pct - t.sys_pct - t.idle_pct
    assert t.missing_pct == pytest.approx(missing)
    assert t.missing_pct == pytest.approx(100 * 10 * 8e-6 / t.wall_s)
    assert t.as_dict()["unaccounted_pct"] == pytest.approx(100 * 10 * 3e-6 / t.wall_s)


def test_with_irq_time_accounting_the_hog_keeps_its_time_and_the_irq_is_apart(p):
    """Against the hog, the completion interrupts the hog: measured, it is irq time and not
    the hog's user time; tick-sampled, it is the hog's. The hog's loop advances the same."""
    bursts, sleeps = np.full(101, 100e-6), np.full(100, 50e-6)
    on = run_timeline(bursts, sleeps, p.replace(sched__irq_time_accounting_switch=1), busy=True)
    off = run_timeline(bursts, sleeps, p, busy=True)
    assert on.hog_iterations == off.hog_iterations
    assert on.irq_s == pytest.approx(100 * 5e-6) and off.irq_s == 0.0
    assert off.user_s - on.user_s == pytest.approx(100 * 5e-6)
    assert on.wall_s == pytest.approx(off.wall_s)


def test_a_tick_that_takes_half_the_cpu_is_refused(p):
    with pytest.raises(ValueError, match="sched.tick_hz x sched.tick_irq_us"):
        run_timeline(np.array([1.0]), np.array([]), p.replace(sched__tick_irq_us=600.0), busy=False)


def test_the_governor_takes_c1_for_a_short_sleep_and_cc6_for_a_long_one(platform):
    """acpi_idle: target residency = exit latency x 2; with C2 at 400 us a sleep below 800 us
    ends in C1 (1 us), a longer one in C2 plus the refetch of half the flushed L2 from L3."""
    from migsim.cost.timeline import LATENCY_FACTOR, idle_exit_s

    q = platform.replace(sched__c1_exit_us=1.0, sched__c2_exit_us=400.0, sched__cc6_refill_frac=0.5)
    c = q.compaction
    refill_us = 0.5 * c.l2_kb * 1024 / 64 * (c.l3_hit_us - c.l2_hit_us)
    got = idle_exit_s(np.array([0.0, 50e-6, 799e-6, 800e-6, 5e-3]), q) * 1e6
    assert LATENCY_FACTOR == 2
    assert got == pytest.approx([0.0, 1.0, 1.0, 400.0 + refill_us, 400.0 + refill_us])


@pytest.mark.parametrize("busy", [False, True])
@pytest.mark.parametrize("msi_here", [0, 1])
def test_a_compaction_wake_up_from_its_parts(platform, msi_here, busy):
    """The end of a DMA sleep in compaction: the engine's time (the copier's wait without its
    lumped 15 us), the last descriptor's interrupt (0.5 us) on the MSI's CPU, then either the
    wake-up's sched_ttwu_pending here (1.5 us; the MSI elsewhere) or every descriptor's
    interrupt here (the MSI here), and, only on an idle CPU, the C1 exit (1 us) and the switch
    from idle (2 us). The sleep is the same whichever CPU state; what differs is the column:
    against the hog the remote wake-up is an IPI (irq); an idle CPU in C1 polls (MWAIT), gets
    no IPI and runs the wake-up in the idle task, as it runs the switch from idle, after its
    idle state ended (in no /proc/stat column)."""
    from types import SimpleNamespace

    from migsim.studies.compaction import wake_up

    q = platform.replace(
        dma__irq_wakeup_us=15.0, dma__desc_irq_us=0.5, sched__c1_exit_us=1.0,
        sched__ctx_switch_us=2.0, sched__wakeup_ipi_us=1.5, sched__msi_on_cpu_switch=msi_here,
    )  # fmt: skip
    bc = SimpleNamespace(
        copy_wait_s=np.array([0.0, 115e-6]), copy_irq_s=np.array([0.0, 32 * 0.5e-6])
    )
    wait, idle_only, here, hidden = wake_up(bc, q, busy=busy)
    if msi_here:
        assert wait * 1e6 == pytest.approx([0.0, 100.0 + 0.5 + 3.0])
        assert here * 1e6 == pytest.approx([0.0, 16.0])
        assert hidden * 1e6 == pytest.approx([0.0, 0.0 if busy else 2.0])
    else:
        assert wait * 1e6 == pytest.approx([0.0, 100.0 + 0.5 + 1.5 + 3.0])
        assert here * 1e6 == pytest.approx([0.0, 1.5 if busy else 0.0])
        assert hidden * 1e6 == pytest.approx([0.0, 0.0 if busy else 1.5 + 2.0])
    assert idle_only * 1e6 == pytest.approx([0.0, 3.0])


def test_an_idle_cpu_in_c2_takes_the_wake_up_ipi(platform):
    """A wait long enough for C2 (its 400 us exit latency x 2): the I/O-port C2 does not poll,
    so the remote wake-up is an IPI (1.5 us of irq time) and only the switch from idle (2 us)
    runs in the idle task after the idle state; a 100 us wait in C1 gets no IPI."""
    from types import SimpleNamespace

    from migsim.studies.compaction import wake_up

    q = platform.replace(
        dma__irq_wakeup_us=15.0, dma__desc_irq_us=0.5, sched__c1_exit_us=1.0,
        sched__c2_exit_us=400.0, sched__ctx_switch_us=2.0, sched__wakeup_ipi_us=1.5,
        sched__msi_on_cpu_switch=0,
    )  # fmt: skip
    bc = SimpleNamespace(copy_wait_s=np.array([115e-6, 915e-6]), copy_irq_s=np.zeros(2))
    _, _, here, hidden = wake_up(bc, q)
    assert here * 1e6 == pytest.approx([0.0, 1.5])
    assert hidden * 1e6 == pytest.approx([1.5 + 2.0, 2.0])
