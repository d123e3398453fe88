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
  the tick-based accounting of /proc/stat charges it to the hog (user time), but the hog's
  loop does not advance meanwhile.

Everything is a closed form over the arrays of bursts and sleeps (no event loop). Hog
iterations = the hog's own running time x clock x iterations per cycle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .platform import Platform

US = 1e-6


@dataclass(frozen=True)
class TimelineResult:
    """CPU time split of one run on the pinned CPU (seconds, counts)."""

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

    @property
    def user_pct(self) -> float:
        return 100.0 * self.user_s / self.wall_s if self.wall_s else 0.0

    @property
    def sys_pct(self) -> float:
        return 100.0 * self.sys_s / self.wall_s if self.wall_s else 0.0

    @property
    def idle_pct(self) -> float:
        return 100.0 * self.idle_s / self.wall_s if self.wall_s else 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(user_pct=self.user_pct, sys_pct=self.sys_pct, idle_pct=self.idle_pct)
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
) -> TimelineResult:
    """Account a run of CPU bursts and DMA sleeps on the pinned CPU, alone (idle modes) or
    against a CPU hog (busy modes). `burst_s[i]` is the work before sleep i, the last entry
    the work after the last sleep (seconds). `wake_s[i]` is the part of sleep i that only an
    idle CPU pays (its exit from the idle state before the woken task runs): with the hog
    running there is no idle state, and sleep i lasts `sleep_s[i] - wake_s[i]`."""
    s = platform.sched
    runs = cpu_runs(burst_s, sleep_s)
    sleeps = np.asarray(sleep_s, dtype=np.float64)
    slept_mask = sleeps > 0
    if busy and wake_s is not None:
        sleeps = np.maximum(sleeps - np.asarray(wake_s, dtype=np.float64), 0.0)
    sleeps = sleeps[slept_mask]
    work = float(runs.sum())
    slept = float(sleeps.sum())
    n = len(sleeps)
    if not busy:
        # the sleeps are idle time; switching to the idle task and back, the interrupt and
        # the wake-up are inside the measured wake-up latency (platform dma.irq_wakeup_us)
        return TimelineResult(
            wall_s=work + slept,
            sys_s=work,
            user_s=0.0,
            idle_s=slept,
            compaction_cpu_s=work,
            sleep_s=slept,
            nr_sleeps=n,
            context_switches=2 * n,
            hog_run_s=0.0,
            hog_iterations=None,
        )
    cs = s.ctx_switch_us * US
    irq = s.completion_irq_us * US
    slice_s = s.slice_us * US
    # fair share: a stretch of compaction work longer than a slice is cut into slices, each
    # followed by a hog slice (two switches per slice boundary)
    slice_switches = int(2 * np.floor(runs / slice_s).sum())
    # in each sleep: switch to the hog, the completion interrupt while the hog runs, the
    # wake-up preemption switch back; the hog's loop runs for the rest of the sleep
    overhead = 2 * cs + irq
    hog_in_sleeps = float(np.maximum(sleeps - overhead, 0.0).sum())
    irq_on_hog = float(np.minimum(np.maximum(sleeps - 2 * cs, 0.0), irq).sum())
    switch_s = cs * (2 * n + slice_switches)
    hog_run = work + hog_in_sleeps  # its fair share of compaction's runnable time + sleeps
    user = hog_run + irq_on_hog
    sys_ = work + switch_s
    wall = sys_ + user
    it = s.hog_clock_ghz * 1e9 * s.hog_iters_per_cycle * hog_run
    return TimelineResult(
        wall_s=wall,
        sys_s=sys_,
        user_s=user,
        idle_s=0.0,
        compaction_cpu_s=work,
        sleep_s=slept,
        nr_sleeps=n,
        context_switches=2 * n + slice_switches,
        hog_run_s=hog_run,
        hog_iterations=int(round(it)),
    )
