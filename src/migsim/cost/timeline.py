"""One CPU's timeline: the compacting task's kernel work, its sleeps on DMA completions, and
(in busy modes) a CPU-hog task pinned to the same CPU under a fair scheduler.

The compacting task alternates CPU bursts (kernel work: sys time) and sleeps (waiting for an
offloaded copy). Alone on its CPU, a sleep is idle time. With a hog on the same CPU the
scheduler (CFS/EEVDF-like, equal weights) gives:

- *fair share while both are runnable*: over the run the hog gets as much CPU as compaction
  does while compaction is runnable, so that part of the run takes twice compaction's CPU
  time. Alternation happens at the scheduler slice: a stretch of compaction work longer than
  a slice costs two context switches per slice;
- *the sleep goes to the hog*: a task's lag is not credited for the time it sleeps, so a
  sleep is not paid back to compaction; the hog runs through it;
- *no idle exit*: the CPU never idles, so a sleep ends as soon as the completion interrupt
  has been handled, without the idle-state exit that an idle CPU adds to the wake-up;
- *wake-up preemption*: the completion interrupt wakes compaction, which preempts the hog;
  each sleep therefore costs two context switches (to the hog, back to compaction), which are
  kernel (sys) time, and the interrupt's handling runs on the CPU while the hog is current:
  the hog's loop does not advance meanwhile.

The split is /proc/stat's (kernel/sched/cputime.c): user, nice, system, idle, iowait, irq,
softirq. With CONFIG_IRQ_TIME_ACCOUNTING (``sched.irq_time_accounting_switch``) the time spent
in hard irqs and softirqs is measured (irqtime_account_irq) and shown in the irq and softirq
columns, and the scheduler's clock_task excludes it, so it is taken from neither task's fair
share; without it the tick samples it into the interrupted task's user or system time. Two
sources of interrupt time on the pinned CPU are modelled:

- *the scheduler tick* (``sched.tick_hz``, ``sched.tick_irq_us`` split by
  ``sched.tick_softirq_frac``): on a CPU that runs a task; NO_HZ_IDLE stops it on an idle CPU;
- *the completion of each offloaded batch* (``sched.completion_irq_us`` unless the copier
  gives the time per batch): alone on its CPU it runs inside the sleep it ends (irq time, not
  idle time); against the hog it interrupts the hog.

On an idle CPU the wake-up that ends a sleep has a part in no /proc/stat column
(``unaccounted_s``): /proc/stat's idle is the nohz idle sleeptime (fs/proc/stat.c
get_idle_time -> get_cpu_idle_time_us), which ends at tick_nohz_idle_exit() in do_idle(); what
the idle task runs after it, flush_smp_call_function_queue() (the queued wake-up,
sched_ttwu_pending, when it came without an IPI) and schedule_idle(), is neither idle time nor a
task's (a tick that lands there goes to CPUTIME_IDLE, which /proc/stat does not show under
NO_HZ). The published rows' missing share is this plus irq and softirq.

nice and iowait are always 0 here (no niced task, no block I/O). Everything is a closed form
over the arrays of bursts and sleeps (no event loop). Hog iterations = the hog's own running
time x clock x iterations per cycle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from migsim.cost.platform import Platform

US = 1e-6


@dataclass(frozen=True)
class TimelineResult:
    """CPU time split of one run on the pinned CPU, as the /proc/stat columns (seconds, counts)."""

    wall_s: float
    sys_s: float
    user_s: float
    idle_s: float
    compaction_cpu_s: float  # the compacting task's own kernel work
    sleep_s: float  # total time the compacting task slept on DMA completions
    nr_sleeps: int
    context_switches: int
    hog_run_s: float  # time the hog's loop actually ran
    hog_iterations: int | None  # None without a hog
    irq_s: float = 0.0  # hard-irq time (ticks, DMA completions)
    softirq_s: float = 0.0  # softirq time (the tick's TIMER/RCU/SCHED softirqs)
    nice_s: float = 0.0  # no niced task runs in the experiment
    iowait_s: float = 0.0  # no block I/O in the experiment
    # the idle task after its idle state ended (tick_nohz_idle_exit): in no /proc/stat column
    unaccounted_s: float = 0.0

    def _pct(self, s: float) -> float:
        return 100.0 * s / self.wall_s if self.wall_s else 0.0

    @property
    def user_pct(self) -> float:
        return self._pct(self.user_s)

    @property
    def sys_pct(self) -> float:
        return self._pct(self.sys_s)

    @property
    def idle_pct(self) -> float:
        return self._pct(self.idle_s)

    @property
    def irq_pct(self) -> float:
        return self._pct(self.irq_s)

    @property
    def softirq_pct(self) -> float:
        return self._pct(self.softirq_s)

    @property
    def unaccounted_pct(self) -> float:
        return self._pct(self.unaccounted_s)

    @property
    def missing_pct(self) -> float:
        """Points that are none of user, system and idle (nice and iowait are 0): irq, softirq
        and the unaccounted idle-task time, as 100 - user - sys - idle of a /proc/stat row."""
        return self._pct(self.irq_s + self.softirq_s + self.unaccounted_s)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(
            {
                f"{k}_pct": self._pct(d[f"{k}_s"])
                for k in ("user", "sys", "idle", "irq", "softirq", "unaccounted")
            }
        )
        return d


def cpu_runs(burst_s: np.ndarray, sleep_s: np.ndarray) -> np.ndarray:
    """Lengths of the stretches of CPU work between sleeps: bursts separated by a zero-length
    sleep (a CPU copy) join into one stretch. `burst_s` has one entry more than `sleep_s`
    (the work after the last sleep)."""
    burst_s = np.asarray(burst_s, dtype=np.float64)
    sleep_s = np.asarray(sleep_s, dtype=np.float64)
    if len(burst_s) != len(sleep_s) + 1:
        raise ValueError("burst_s: must have one entry more than sleep_s")
    cut = np.flatnonzero(sleep_s > 0)  # a real sleep ends the stretch after burst i
    csum = np.concatenate(([0.0], np.cumsum(burst_s)))
    edges = np.concatenate(([0], cut + 1, [len(burst_s)]))
    return np.diff(csum[edges])


def run_timeline(
    burst_s: np.ndarray,
    sleep_s: np.ndarray,
    platform: Platform,
    *,
    busy: bool,
    wake_s: np.ndarray | None = None,
    irq_s: np.ndarray | None = None,
    unaccounted_s: np.ndarray | None = None,
) -> TimelineResult:
    """Account a run of CPU bursts and DMA sleeps on the pinned CPU, alone (idle modes) or
    against a CPU hog (busy modes). `burst_s[i]` is the work before sleep i, the last entry
    the work after the last sleep (seconds). `wake_s[i]` is the part of sleep i that only an
    idle CPU pays (its exit from the idle state before the woken task runs): with the hog
    running there is no idle state, and sleep i lasts `sleep_s[i] - wake_s[i]`. `irq_s[i]` is
    the interrupt time that ends sleep i on this CPU (default ``sched.completion_irq_us``).
    `unaccounted_s[i]` is the part of sleep i that an idle CPU spends in the idle task after its
    idle state ended (in no /proc/stat column; default none); busy modes ignore it."""
    s = platform.sched
    runs = cpu_runs(burst_s, sleep_s)
    sleeps = np.asarray(sleep_s, dtype=np.float64)
    slept_mask = sleeps > 0
    if irq_s is None:
        irqs = np.full(len(sleeps), s.completion_irq_us * US)
    else:
        irqs = np.asarray(irq_s, dtype=np.float64)
    if busy and wake_s is not None:
        sleeps = np.maximum(sleeps - np.asarray(wake_s, dtype=np.float64), 0.0)
    if unaccounted_s is None or busy:
        hidden = np.zeros(len(sleeps))
    else:
        hidden = np.asarray(unaccounted_s, dtype=np.float64)
    sleeps = sleeps[slept_mask]
    irqs = irqs[slept_mask]
    hidden = hidden[slept_mask]
    work = float(runs.sum())
    slept = float(sleeps.sum())
    n = len(sleeps)
    measured = bool(s.irq_time_accounting_switch)
    tick_frac = s.tick_hz * s.tick_irq_us * US  # share of a running CPU's time in the tick
    if not 0.0 <= tick_frac < 0.5:
        raise ValueError(
            f"sched.tick_hz x sched.tick_irq_us: the tick takes {100 * tick_frac:.1f}% of the "
            "CPU; must be below 50%"
        )
    if not busy:
        # the sleeps are idle time except the completion interrupt on this CPU and the idle
        # task's work after it left its idle state (unaccounted); ticks only while the CPU
        # runs a task (NO_HZ_IDLE)
        completion = float(np.minimum(irqs, sleeps).sum())
        unaccounted = float(np.minimum(hidden, np.maximum(sleeps - irqs, 0.0)).sum())
        tick = work * tick_frac / (1.0 - tick_frac)
        irq, softirq, sys_ = _split_irq(tick, completion, s.tick_softirq_frac, measured)
        return TimelineResult(
            wall_s=work + tick + slept,
            sys_s=work + (0.0 if measured else tick),
            user_s=0.0,
            idle_s=slept - unaccounted - (completion if measured else 0.0),
            compaction_cpu_s=work,
            sleep_s=slept,
            nr_sleeps=n,
            context_switches=2 * n,
            hog_run_s=0.0,
            hog_iterations=None,
            irq_s=irq,
            softirq_s=softirq,
            unaccounted_s=unaccounted,
        )
    cs = s.ctx_switch_us * US
    slice_s = s.slice_us * US
    # fair share: a stretch of compaction work longer than a slice is cut into slices, each
    # followed by a hog slice (two switches per slice boundary)
    slice_switches = int(2 * np.floor(runs / slice_s).sum())
    # in each sleep: switch to the hog, the completion interrupt while the hog runs, the
    # wake-up preemption switch back; the hog's loop runs for the rest of the sleep
    hog_in_sleeps = float(np.maximum(sleeps - 2 * cs - irqs, 0.0).sum())
    irq_on_hog = float(np.minimum(np.maximum(sleeps - 2 * cs, 0.0), irqs).sum())
    switch_s = cs * (2 * n + slice_switches)
    hog_run = work + hog_in_sleeps  # its fair share of compaction's runnable time + sleeps
    sys_ = work + switch_s
    # the tick interrupts both tasks alike (clock_task excludes irq time, so the fair share
    # is kept): it stretches the whole run
    base = sys_ + hog_run + irq_on_hog
    tick = base * tick_frac / (1.0 - tick_frac)
    irq, softirq, _ = _split_irq(tick, irq_on_hog, s.tick_softirq_frac, measured)
    user = hog_run
    if not measured:  # the tick samples interrupt time into whichever task it interrupted
        user += irq_on_hog + tick * (hog_run + irq_on_hog) / base
        sys_ += tick * (sys_ / base)
    it = s.hog_clock_ghz * 1e9 * s.hog_iters_per_cycle * hog_run
    return TimelineResult(
        wall_s=base + tick,
        sys_s=sys_,
        user_s=user,
        idle_s=0.0,
        compaction_cpu_s=work,
        sleep_s=slept,
        nr_sleeps=n,
        context_switches=2 * n + slice_switches,
        hog_run_s=hog_run,
        hog_iterations=int(round(it)),
        irq_s=irq,
        softirq_s=softirq,
    )


def _split_irq(
    tick_s: float, completion_s: float, softirq_frac: float, measured: bool
) -> tuple[float, float, float]:
    """(irq, softirq, unmeasured) seconds: with irq time accounting the tick's time splits
    into hard irq and softirq and the completions are hard irq; without it all is unmeasured
    (charged to the interrupted task by the caller)."""
    if not measured:
        return 0.0, 0.0, tick_s + completion_s
    return tick_s * (1.0 - softirq_frac) + completion_s, tick_s * softirq_frac, 0.0


# drivers/acpi/processor_idle.c: acpi_processor_setup_cstates() sets each state's
# target_residency to its exit latency x latency_factor (module parameter, default 2)
LATENCY_FACTOR = 2


def idle_exit_s(sleep_s: np.ndarray, platform: Platform) -> np.ndarray:
    """Seconds an idle CPU takes to leave its idle state at the end of each sleep of
    `sleep_s` seconds (0 where there is no sleep): the cpuidle governor (an ideal menu/teo:
    it knows the sleep's length) takes the deepest state whose target residency, exit latency
    x LATENCY_FACTOR, fits in the sleep: C1 (``sched.c1_exit_us``) or C2, the core's CC6
    (``sched.c2_exit_us``), after which the woken task also refetches ``cc6_refill_frac`` of
    the flushed L2 from L3."""
    s, c = platform.sched, platform.compaction
    sleep_s = np.asarray(sleep_s, dtype=np.float64)
    refill = s.cc6_refill_frac * c.l2_kb * 1024 / 64 * (c.l3_hit_us - c.l2_hit_us)
    deep = sleep_s >= LATENCY_FACTOR * s.c2_exit_us * US
    exit_us = np.where(deep, s.c2_exit_us + refill, s.c1_exit_us)
    return np.where(sleep_s > 0, exit_us * US, 0.0)
