"""Copy back-ends of migrate_pages(): how long a batch copy takes and what the CPU does meanwhile.

Every copier works on many batches at once (numpy arrays, one entry per batch) so that a
compaction run with tens of thousands of migrate_pages() calls is costed in a few vector
operations. A batch is described by its folio count and byte count; the copier returns, per
batch, the wall time of the copy step, the time the migrating CPU is busy (sys), the time it
sleeps waiting (idle unless another task runs), CPU time spent on other CPUs, and how many
folios the offload engine copied or failed to copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .platform import Platform
from .units import PAGE_SIZE

US = 1e-6
GB = 1e9


@dataclass
class CopyCost:
    """Per-batch cost of the copy step (arrays of one entry per batch; seconds, folios)."""

    wall_s: np.ndarray  # wall time of the copy step
    cpu_s: np.ndarray  # migrating CPU busy in the kernel (sys) during the step
    wait_s: np.ndarray  # migrating CPU asleep waiting for the copy (idle unless another task runs)
    other_cpu_s: np.ndarray  # CPU time on other CPUs (copy threads)
    offloaded: np.ndarray  # folios copied by the offload engine (dcbm's folios_migrated)
    failed: np.ndarray  # folios whose offloaded copy failed: copied by the CPU in the move phase
    wake_s: np.ndarray  # part of wait_s only an idle CPU pays: the exit from its idle state


def _zeros(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.float64)


class Copier(Protocol):
    """What migrate_pages() asks of a copy back-end."""

    name: str

    def copy_batches(
        self,
        nr_folios: np.ndarray,
        nr_bytes: np.ndarray,
        platform: Platform,
        rng: np.random.Generator,
        scale: float = 1.0,
    ) -> CopyCost: ...


def cpu_copy_seconds(nr_folios: np.ndarray, nr_bytes: np.ndarray, platform: Platform) -> np.ndarray:
    """Seconds of single-threaded folio_copy() for `nr_folios` folios holding `nr_bytes` bytes."""
    c = platform.copy
    return nr_folios * (c.cpu_copy_fixed_us * US) + nr_bytes / (c.cpu_copy_gbps * GB)


@dataclass(frozen=True)
class CpuCopier:
    """The vanilla kernel: folio_copy() of each folio in turn on the migrating CPU."""

    name: str = "cpu"

    def copy_batches(self, nr_folios, nr_bytes, platform, rng, scale=1.0) -> CopyCost:
        t = cpu_copy_seconds(nr_folios, nr_bytes, platform) * scale
        n = len(t)
        return CopyCost(t, t.copy(), _zeros(n), _zeros(n), _zeros(n), _zeros(n), _zeros(n))


@dataclass(frozen=True)
class DmaCopier:
    """dcbm: offload the batch copy to `channels` DMA channels.

    Per batch: request the channels, split the folios evenly across them (one memcpy descriptor
    per folio, prepared and submitted by the CPU), issue, sleep until the last channel's
    completion interrupt. Channels fill engines in order, `chans_per_engine_count` to an
    engine; busy channels of one engine share its bandwidth, and all engines share the
    interconnect. A descriptor's head (`ramp_kb`) moves at a latency-bound rate with a stall
    at each 4 KiB page after its first (`page_stall_us`): the published throughput table
    needs both, since a 4K descriptor costs less per byte there than a 16K or 64K one.
    A descriptor fails with probability `fail_rate`; its folio is then copied by the CPU in
    the move phase (the kernel's per-folio fallback). Batches smaller than `min_batch_bytes`
    are not offloaded but copied by the CPU (a `should_batch`-style policy).

    Simplifications: folios of a batch are taken as equal-sized for the split (the busiest
    channel gets ceil(n/channels) folios and that share of the bytes); the CPU prepares all
    descriptors before the engines start (dcbm issues each channel once, after submitting).
    """

    channels: int = 1
    fail_rate: float = 0.0
    min_batch_bytes: int = 0
    name: str = "dma"

    def __post_init__(self):
        if not isinstance(self.channels, int | np.integer) or self.channels < 1:
            raise ValueError(f"channels: must be a whole number >= 1, got {self.channels!r}")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError(f"fail_rate: must be in [0, 1], got {self.fail_rate!r}")
        if self.min_batch_bytes < 0:
            raise ValueError(f"min_batch_bytes: must be >= 0, got {self.min_batch_bytes!r}")

    def engine_seconds(self, nr_folios: np.ndarray, nr_bytes: np.ndarray, platform: Platform):
        """Engine time of each batch (s): the busiest channel's descriptors, one after the
        other, the head of each descriptor (ramp_kb) at the latency-bound rate plus a stall at
        each of its 4 KiB pages after the first, the rest at the channel's share of its
        engine; and never less than the whole batch at the interconnect's bandwidth (which
        channels that finish early leave to the others). Also returns active channels."""
        d = platform.dma
        if self.channels > d.max_channels_count:
            raise ValueError(
                f"channels: the platform has {d.max_channels_count} DMA channels, got {self.channels}"
            )
        n = np.asarray(nr_folios, dtype=np.float64)
        active = np.minimum(self.channels, np.maximum(n, 1.0))  # channels that get a descriptor
        per_chan = np.ceil(n / active)
        desc_bytes = np.where(n > 0, nr_bytes / np.maximum(n, 1.0), 0.0)  # mean folio size
        sharing = np.minimum(active, d.chans_per_engine_count)
        rate = d.engine_gbps * GB / sharing
        head = np.minimum(desc_bytes, d.ramp_kb * 1024.0)
        # Simplification: the stall is charged per 4 KiB of the head beyond the first, as a
        # continuous count (a head that ends inside a page pays that fraction of a stall)
        stalls = np.maximum(head / PAGE_SIZE - 1.0, 0.0)
        per_desc = (
            head / np.minimum(d.ramp_gbps * GB, rate)
            + stalls * d.page_stall_us * US
            + (desc_bytes - head) / rate
        )
        return np.maximum(per_chan * per_desc, nr_bytes / (d.fabric_gbps * GB)), active

    def copy_batches(self, nr_folios, nr_bytes, platform, rng, scale=1.0) -> CopyCost:
        d = platform.dma
        nr_folios = np.asarray(nr_folios, dtype=np.int64)
        nr_bytes = np.asarray(nr_bytes, dtype=np.float64)
        offload = nr_bytes >= self.min_batch_bytes
        engine_s, active = self.engine_seconds(nr_folios, nr_bytes, platform)
        # Simplification: the channel requests of one call are costed as one per-call setup (the
        # mutex and dmaengine device-list walk dominate), not per channel
        prep_s = nr_folios * d.prep_us * US + np.where(nr_folios > 0, d.call_setup_us * US, 0.0)
        wait_s = engine_s + d.irq_wakeup_us * US
        if self.fail_rate > 0:
            failed = rng.binomial(nr_folios, self.fail_rate)
        else:
            failed = np.zeros_like(nr_folios)
        cpu_s = np.where(offload, prep_s, cpu_copy_seconds(nr_folios, nr_bytes, platform)) * scale
        wait_s = np.where(offload, wait_s, 0.0) * scale
        # of the wake-up latency, all but the interrupt itself is the idle CPU's exit from
        # its idle state, which a CPU busy with another task does not pay
        idle_exit_us = max(d.irq_wakeup_us - platform.sched.completion_irq_us, 0.0)
        wake_s = np.where(offload, idle_exit_us * US, 0.0) * scale
        failed = np.where(offload, failed, 0)
        offloaded = np.where(offload, nr_folios - failed, 0)
        z = _zeros(len(cpu_s))
        return CopyCost(cpu_s + wait_s, cpu_s, wait_s, z, offloaded, failed, wake_s)


@dataclass(frozen=True)
class MtCopier:
    """Multi-threaded CPU copy (earlier versions of the series): `threads` kernel threads each
    copy an equal slice of the batch; the migrating CPU queues the work and sleeps until the
    last thread finishes. Not fitted to data: its parameters are documented priors."""

    threads: int = 4
    name: str = "mt"

    def __post_init__(self):
        if not isinstance(self.threads, int | np.integer) or self.threads < 1:
            raise ValueError(f"threads: must be a whole number >= 1, got {self.threads!r}")

    def copy_batches(self, nr_folios, nr_bytes, platform, rng, scale=1.0) -> CopyCost:
        m = platform.mt
        if self.threads > m.max_threads_count:
            raise ValueError(
                f"threads: the platform has {m.max_threads_count} copy threads, got {self.threads}"
            )
        nr_folios = np.asarray(nr_folios, dtype=np.float64)
        nr_bytes = np.asarray(nr_bytes, dtype=np.float64)
        # a folio is not split between threads: at most one thread per folio
        active = np.minimum(self.threads, np.maximum(nr_folios, 1.0))
        rate = np.minimum(m.thread_copy_gbps * GB, m.mt_cap_gbps * GB / active)
        per_thread_folios = np.ceil(nr_folios / active)
        slice_bytes = nr_bytes * per_thread_folios / np.maximum(nr_folios, 1.0)
        thread_s = per_thread_folios * platform.copy.cpu_copy_fixed_us * US + slice_bytes / rate
        cpu_s = active * m.thread_start_us * US * scale
        wait_s = thread_s * scale
        other = (
            nr_folios * platform.copy.cpu_copy_fixed_us * US + nr_bytes / rate
        ) * scale  # all threads' copy time
        z = _zeros(len(cpu_s))
        return CopyCost(cpu_s + wait_s, cpu_s, wait_s, other, z, z, z)


def make_copier(
    mode: str,
    *,
    channels: int | None = None,
    threads: int | None = None,
    fail_rate: float = 0.0,
    min_batch_bytes: int = 0,
) -> Copier:
    """The copier of a mode: `baseline`/`cpu` -> CpuCopier, `dma` -> DmaCopier, `mt` -> MtCopier."""
    if mode in ("baseline", "cpu"):
        return CpuCopier()
    if mode == "dma":
        return DmaCopier(
            channels=1 if channels is None else channels,
            fail_rate=fail_rate,
            min_batch_bytes=min_batch_bytes,
        )
    if mode == "mt":
        return MtCopier(threads=4 if threads is None else threads)
    raise ValueError(f"mode: must be one of baseline, dma, mt; got {mode!r}")
