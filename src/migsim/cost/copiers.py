"""Copy back-ends of migrate_pages(): how long a batch copy takes and what the CPU does meanwhile.

Every copier works on many batches at once (numpy arrays, one entry per batch) so that a
compaction run with tens of thousands of migrate_pages() calls is costed in a few vector
operations. A batch is described by its folio count and byte count; the copier returns, per
batch, the wall time of the copy step, the time the migrating CPU is busy (sys), the time it
sleeps waiting (idle unless another task runs), CPU time spent on other CPUs, the CPU time of
the engine's completion interrupts, and how many folios the offload engine copied or failed
to copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from migsim.cost.platform import Platform
from migsim.units import PAGE_SIZE
from migsim.versions import FALLBACKS, PLACEMENTS, RFCS

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
    # completion-interrupt CPU time of the batch (hard irq handlers of the engine, on the CPU
    # its MSI targets), apart from cpu_s and wait_s so a timeline can account it as irq time
    irq_s: np.ndarray | None = None

    def __post_init__(self):
        if self.irq_s is None:
            self.irq_s = np.zeros_like(self.wall_s)


def _zeros(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.float64)


def _counts(n: int) -> np.ndarray:
    """No folios in any of n batches (offloaded, failed are folio counts, as the DMA copier's)."""
    return np.zeros(n, dtype=np.int64)


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
        return CopyCost(t, t.copy(), _zeros(n), _zeros(n), _counts(n), _counts(n), _zeros(n))


@dataclass(frozen=True)
class DcbmVersion:
    """What one version of dcbm (the series' DMA driver, ``folios_copy_dma``) does per call.

    v2 (drivers/migoffcopy/dcbm/dcbm.c, RFC V2 7/9): ``dma_request_channel`` per channel and
    call, ``dma_map_page`` of each folio on its own, every descriptor with
    ``DMA_PREP_INTERRUPT`` and a callback, round-robin over the channels, no unmap and no
    terminate, ``dma_release_channel``; a folio whose mapping or prep fails is copied by the
    CPU at once. v3/v4 (dcbm.c ``setup_sg_tables``, ``submit_dma_transfers``,
    ``cleanup_dma_work``): ``dma_request_chan_by_mask`` per channel and call, one
    scatter-gather table per channel and side mapped with ``dma_map_sgtable``, one
    ``dmaengine_prep_dma_memcpy`` + ``dmaengine_submit`` per folio, only the last descriptor
    of a channel with ``DMA_PREP_INTERRUPT`` and the callback, ``dma_async_issue_pending``
    per channel, ``wait_for_completion_timeout`` per channel, then
    ``dmaengine_terminate_sync``, unmap, free, ``dma_release_channel``; any error fails the
    whole batch (``folios_failures += nr_folios``) and migrate_pages copies every folio of
    it with the CPU. v6: channels acquired once when offloading is enabled
    (``dcbm_get_channels``) and claimed per call with ``mutex_trylock``; a batch uses the
    channels of one DMA device group (``dcbm_claim_channels``), folios mapped one by one
    (``map_folios``), every descriptor with its own ``callback_result``, no terminate; the
    per-folio FOLIO_CONTENT_COPIED flag lets only the folios not copied fall back.
    """

    request_per_call: bool  # dma_request_chan_by_mask + dma_release_channel on every call
    sg_tables: bool  # setup_sg_tables per channel (v3/v4) or map_folios' array (v6)
    # one descriptor per segment of the mapped sg table (v3/v4: dma_map_sgtable, then
    # for_each_sgtable_dma_sg), which merges IOVA-contiguous entries (dma.max_seg_kb); else
    # one descriptor per folio (v2 dma_map_page, v6 map_folios)
    sg_segments: bool
    terminate: bool  # dmaengine_terminate_sync per channel in cleanup
    one_device: bool  # a batch uses one device group's channels only (v6)
    fallback: str  # "batch": an error fails every folio of the batch; "folio": only its own
    # dma_map_page calls per folio, each with its own IOVA allocation (dma.map_page_us): v2
    # process_folio_dma_transfer and v6 map_folios map source and destination on their own;
    # v3/v4 map one sg table per channel and side instead (dma.sgt_map_us)
    page_maps: int = 0


DCBM = {
    "v2": DcbmVersion(True, False, False, False, False, "folio", page_maps=2),
    "v3": DcbmVersion(True, True, True, True, False, "batch"),
    "v4": DcbmVersion(True, True, True, True, False, "batch"),
    "v6": DcbmVersion(False, True, False, False, True, "folio", page_maps=2),
}


def loaded_fabric_seconds(
    stream_s: np.ndarray, gap_s: np.ndarray, nr_bytes: np.ndarray, fabric_gbps
) -> np.ndarray:
    """Seconds the DMA engines take for `nr_bytes` when, unloaded, they stream for `stream_s`
    and idle for `gap_s` (descriptor restarts) in between, and all of them read across one
    interconnect of capacity `fabric_gbps` (GB/s).

    Mechanism: a PTDMA engine's read and write ports are AXI masters (the IDMA0/ODMA0 AXI
    error codes of drivers/dma/amd/ptdma/ptdma-dev.c, pt_error_codes) with a fixed number of
    outstanding transactions, so by Little's law its rate is that number over the read
    latency, and the latency of a shared interconnect at load rho = rate / fabric grows as
    1 / (1 - rho) (a single queue with exponential service, M/M/1). The streaming part and the
    latency-bound head alike stretch by 1 / (1 - rho), the restarts (interrupt and doorbell,
    no traffic) do not: T = gap + stream / (1 - B / (T F)), whose root is
    T = (b + sqrt(b^2 - 4 gap B / F)) / 2 with b = stream + gap + B / F. Without gaps that
    is stream + B / F: the engines' and the interconnect's rates combined serially, the form
    mt_copy_gbps uses for the copy threads. Simplification: rho is the batch's mean load (the
    channels get equal shares and finish together); reads and writes share one capacity.
    Used when dma.fabric_load_switch is 1; with 0 the interconnect is a hard cap."""
    b_over_f = np.asarray(nr_bytes, dtype=np.float64) / (np.asarray(fabric_gbps) * GB)
    b = stream_s + gap_s + b_over_f
    # the discriminant is at least (gap - B/F)^2 >= 0 (stream >= 0); clipped against rounding
    return 0.5 * (b + np.sqrt(np.maximum(b * b - 4.0 * gap_s * b_over_f, 0.0)))


def check_rfc(rfc: str) -> str:
    """`rfc` if it names a version of the series, else a ValueError naming the allowed ones."""
    if rfc not in RFCS:
        raise ValueError(f"rfc: must be one of {', '.join(RFCS)}; got {rfc!r}")
    return rfc


@dataclass(frozen=True)
class DmaCopier:
    """dcbm on PTDMA: offload each batch copy to up to `channels` DMA channels, as the driver
    of version `rfc` does it (see ``DcbmVersion``).

    CPU of the migrating task, per batch: ``call_setup_us``; per channel requested
    ``chan_request_us`` (v2..v4; v6 holds its channels); per used channel ``sgt_map_us``
    (v3, v4, v6), ``issue_us`` and ``terminate_us`` (v3, v4); per folio ``prep_us``, and in
    v2 and v6 two ``map_page_us`` (dma_map_page of its source and destination); per
    descriptor ``desc_prep_us``. v2's per-descriptor completion callback
    (folios_dma_completion_callback: a spin_lock, a decrement, spin_unlock, run by
    pt_handle_active_desc before the next descriptor is started) is not priced: two
    uncontended lock operations, well under 0.1 us against a descriptor's restart. Then it sleeps until the slowest channel completes (one
    wake-up: the channels get equal shares and finish together, so the later
    ``wait_for_completion`` calls find them done).

    Descriptors: v3/v4 prepare one per segment of the channel's mapped sg table
    (``for_each_sgtable_dma_sg``). With the IOMMU translating, ``dma_map_sgtable`` ->
    iommu_dma_map_sg maps the table into one IOVA range and __finalise_sg
    (drivers/iommu/dma-iommu.c) concatenates page-aligned, contiguous entries while the
    segment stays within the device's max_seg_size (``max_seg_kb``: PCI's default 64 KiB),
    so 4K folios go 16 to a descriptor, 16K folios 4, 64K and larger one each. v2
    (dma_map_page) and v6 (map_folios) prepare one descriptor per folio.

    Engine: a PTDMA device has one command queue and one channel (pt_dmaengine_register);
    the queue runs one descriptor at a time and the next one is started from the completion
    interrupt (pt_cmd_callback -> pt_dma_start_desc), so each descriptor after a channel's
    first waits ``desc_restart_us``, and every descriptor raises an interrupt whose handler
    costs ``desc_irq_us`` on the CPU the PTDMA MSI targets (``irq_s``, not the migrating
    CPU's sys time). A descriptor's head (``ramp_kb``) moves at ``ramp_gbps``, the rest at
    the channel's share of its engine; channels fill engines in order,
    ``chans_per_engine_count`` to an engine, and all engines share the interconnect (a hard
    cap, or with ``fabric_load_switch`` a capacity whose load raises their read latency).

    Failures: a descriptor fails with probability `fail_rate`. ``fallback`` "batch" (the v3
    and v4 default) fails the whole batch before it is issued (v4 sees errors of prep and
    submit; its completion callback ignores the result): every folio is copied by the CPU
    in the move phase and counted in folios_failures. "folio" (the v2 and v6 default) copies
    only the failed folios with the CPU. Batches smaller than `min_batch_bytes` are not
    offloaded (a `should_batch`-style policy).

    Simplifications: folios of a batch are taken as equal-sized for the split (the busiest
    channel gets ceil(n/channels) folios and that share of the bytes; a merged segment holds
    whole folios, and a 4 GiB IOVA boundary, where __finalise_sg also cuts, is ignored); all
    descriptors are prepared before the engines start (v4 issues after submitting every
    channel; v6 issues each channel after its own submit, which starts the last channel no
    earlier).
    """

    channels: int = 1
    fail_rate: float = 0.0
    min_batch_bytes: int = 0
    rfc: str = "v4"
    fallback: str | None = None  # None: the version's own semantics
    name: str = "dma"

    def __post_init__(self):
        if not isinstance(self.channels, int | np.integer) or self.channels < 1:
            raise ValueError(f"channels: must be a whole number >= 1, got {self.channels!r}")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError(f"fail_rate: must be in [0, 1], got {self.fail_rate!r}")
        if self.min_batch_bytes < 0:
            raise ValueError(f"min_batch_bytes: must be >= 0, got {self.min_batch_bytes!r}")
        check_rfc(self.rfc)
        if self.fallback is not None and self.fallback not in FALLBACKS:
            raise ValueError(
                f"fallback: must be one of {', '.join(FALLBACKS)}; got {self.fallback!r}"
            )

    @property
    def driver(self) -> DcbmVersion:
        return DCBM[self.rfc]

    @property
    def fallback_mode(self) -> str:
        return self.fallback or self.driver.fallback

    def used_channels(self, nr_folios: np.ndarray, platform: Platform) -> np.ndarray:
        """Channels that get descriptors in each batch: min(nr_dma_chan, nr_folios), and for
        v6 no more than one device group holds (dcbm_claim_channels)."""
        d = platform.dma
        if self.channels > d.max_channels_count:
            raise ValueError(
                f"channels: the platform has {d.max_channels_count} DMA channels, got {self.channels}"
            )
        want = self.channels
        if self.driver.one_device:
            want = min(want, d.chans_per_device_count)
        return np.minimum(want, np.maximum(np.asarray(nr_folios, dtype=np.float64), 1.0))

    def folios_per_desc(self, nr_folios: np.ndarray, nr_bytes: np.ndarray, platform: Platform):
        """Folios one descriptor copies in each batch: as many whole folios as fit in one
        mapped segment of dma.max_seg_kb for v3/v4 (at least one), else one."""
        n = np.asarray(nr_folios, dtype=np.float64)
        folio = np.where(n > 0, np.asarray(nr_bytes, dtype=np.float64) / np.maximum(n, 1.0), 0.0)
        seg = platform.dma.max_seg_kb * 1024.0
        if not self.driver.sg_segments:
            return np.ones_like(n)
        return np.maximum(np.floor(seg / np.maximum(folio, 1.0)), 1.0)

    def descriptors(self, nr_folios: np.ndarray, nr_bytes: np.ndarray, platform: Platform):
        """Descriptors of each batch over all its channels (folios_copy_dma splits the folios
        as evenly as it can: n mod channels of them get one folio more), and of its busiest
        channel."""
        n = np.asarray(nr_folios, dtype=np.float64)
        active = self.used_channels(n, platform)
        k = self.folios_per_desc(n, nr_bytes, platform)
        q = np.floor(n / active)
        extra = n - q * active  # channels with q + 1 folios
        busiest = np.ceil(np.ceil(n / active) / k)
        total = extra * np.ceil((q + 1.0) / k) + (active - extra) * np.ceil(q / k)
        return np.where(n > 0, total, 0.0), np.where(n > 0, busiest, 0.0)

    def engine_seconds(self, nr_folios: np.ndarray, nr_bytes: np.ndarray, platform: Platform):
        """Engine time of each batch (s): the busiest channel's descriptors one after the
        other, each after the first waiting for its restart from the completion interrupt,
        the head of each (ramp_kb) at the latency-bound rate, the rest at the channel's share
        of its engine; never less than the whole batch at the interconnect's bandwidth (which
        channels that finish early leave to the others), or, with dma.fabric_load_switch 1,
        all of it at the read latency the interconnect's load gives (loaded_fabric_seconds).
        Also returns the channels used."""
        d = platform.dma
        n = np.asarray(nr_folios, dtype=np.float64)
        active = self.used_channels(n, platform)
        _, per_chan = self.descriptors(n, nr_bytes, platform)
        chan_bytes = np.ceil(n / active) * np.where(n > 0, nr_bytes / np.maximum(n, 1.0), 0.0)
        desc_bytes = chan_bytes / np.maximum(per_chan, 1.0)
        sharing = np.minimum(active, d.chans_per_engine_count)
        rate = d.engine_gbps * GB / sharing
        head = np.minimum(desc_bytes, d.ramp_kb * 1024.0)
        per_desc = head / np.minimum(d.ramp_gbps * GB, rate) + (desc_bytes - head) / rate
        restarts = np.maximum(per_chan - 1.0, 0.0) * d.desc_restart_us * US
        if d.fabric_load_switch:
            stream_s = per_chan * per_desc
            return loaded_fabric_seconds(stream_s, restarts, nr_bytes, d.fabric_gbps), active
        chan_s = per_chan * per_desc + restarts
        return np.maximum(chan_s, nr_bytes / (d.fabric_gbps * GB)), active

    def setup_seconds(
        self, nr_folios: np.ndarray, platform: Platform, nr_bytes: np.ndarray | None = None
    ) -> np.ndarray:
        """CPU seconds of the migrating task per batch for the driver's own work (requests,
        tables, descriptors, issue, terminate, release): what offloading costs the CPU.
        `nr_bytes` (default: 4 KiB folios) sets how many folios share a descriptor."""
        d, v = platform.dma, self.driver
        n = np.asarray(nr_folios, dtype=np.float64)
        nr_bytes = n * PAGE_SIZE if nr_bytes is None else nr_bytes
        active = self.used_channels(n, platform)
        descs, _ = self.descriptors(n, nr_bytes, platform)
        per_chan_us = d.issue_us + (d.chan_request_us if v.request_per_call else 0.0)
        per_chan_us += (d.sgt_map_us if v.sg_tables else 0.0) + (
            d.terminate_us if v.terminate else 0.0
        )
        per_folio_us = d.prep_us + v.page_maps * d.map_page_us
        us = n * per_folio_us + descs * d.desc_prep_us + active * per_chan_us + d.call_setup_us
        return np.where(n > 0, us * US, 0.0)

    def copy_batches(self, nr_folios, nr_bytes, platform, rng, scale=1.0) -> CopyCost:
        d = platform.dma
        nr_folios = np.asarray(nr_folios, dtype=np.int64)
        nr_bytes = np.asarray(nr_bytes, dtype=np.float64)
        offload = (nr_bytes >= self.min_batch_bytes) & (nr_folios > 0)
        engine_s, active = self.engine_seconds(nr_folios, nr_bytes, platform)
        prep_s = self.setup_seconds(nr_folios, platform, nr_bytes)
        wait_s = engine_s + d.irq_wakeup_us * US
        if self.fail_rate > 0:
            failed = rng.binomial(nr_folios, self.fail_rate)
        else:
            failed = np.zeros_like(nr_folios)
        irq_s = self.descriptors(nr_folios, nr_bytes, platform)[0] * d.desc_irq_us * US
        if self.fallback_mode == "batch":
            # v4: a failed prep/submit aborts the batch before it is issued (cleanup_dma_work
            # terminates the channels): the engine never runs, every folio falls back
            whole = failed > 0
            failed = np.where(whole, nr_folios, 0)
            wait_s = np.where(whole, 0.0, wait_s)
            irq_s = np.where(whole, 0.0, irq_s)
        cpu_s = np.where(offload, prep_s, cpu_copy_seconds(nr_folios, nr_bytes, platform)) * scale
        wait_s = np.where(offload, wait_s, 0.0) * scale
        wake_s = np.where(offload & (wait_s > 0), wake_idle_exit_us(platform) * US * scale, 0.0)
        irq_s = np.where(offload, irq_s, 0.0) * scale
        failed = np.where(offload, failed, 0)
        offloaded = np.where(offload, nr_folios - failed, 0)
        z = _zeros(len(cpu_s))
        return CopyCost(cpu_s + wait_s, cpu_s, wait_s, z, offloaded, failed, wake_s, irq_s)


def wake_idle_exit_us(platform: Platform):
    """The part of dma.irq_wakeup_us that is the woken CPU's exit from its idle state, us: all
    of the wake-up latency but the interrupt itself (sched.completion_irq_us); a CPU busy
    with another task does not pay it. The DMA copier's waits and mtcopy's kworkers both
    take it (a float, or an array beside the platform's parameter samples)."""
    return np.maximum(platform.dma.irq_wakeup_us - platform.sched.completion_irq_us, 0.0)


def thread_ccds(threads: int, placement: str, platform: Platform) -> np.ndarray:
    """Copy threads per CCD for `threads` threads queued with queue_work_on on the CPU list of
    mtcopy's `cpuselect` (copy_pages.c cpu_id_list_0: CPU 0, 8, 16, ... one per CCD in
    turn; cpu_id_list_1: CPU 0, 1, 2, ... filling one CCD before the next)."""
    m = platform.mt
    ccds, per_ccd = m.ccds_count, m.cores_per_ccd_count
    i = np.arange(threads)
    if placement == "spread":
        ccd = i % ccds
    elif placement == "fill-ccd":
        ccd = (i // per_ccd) % ccds
    else:
        raise ValueError(f"placement: must be one of {', '.join(PLACEMENTS)}; got {placement!r}")
    return np.bincount(ccd, minlength=ccds).astype(np.float64)


def mt_copy_gbps(threads: np.ndarray, placement: str, platform: Platform) -> np.ndarray:
    """Copy rate (GB/s) of `threads` active copy threads (array) in `placement`: each thread
    streams at thread_copy_gbps, the threads of one CCD together at most ccd_gbps (its link
    to the I/O die), and all of them through the socket interconnect, whose load raises
    every stream's latency: the threads' rate S and the interconnect's F combine serially,
    S*F/(S+F) (each thread keeps a fixed number of cache lines in flight, so its rate falls
    as the loaded latency grows). Simplification: one interconnect for both directions."""
    m = platform.mt
    threads = np.atleast_1d(np.asarray(threads, dtype=np.int64))
    # the bandwidths may be arrays beside `threads` (parameter samples, migsim.calibrate.intervals)
    t, ccd, fabric = (
        np.broadcast_to(v, threads.shape) for v in (m.thread_copy_gbps, m.ccd_gbps, m.mt_cap_gbps)
    )
    out = np.empty(len(threads))
    for n in np.unique(threads):
        on = threads == n
        per_ccd = thread_ccds(int(n), placement, platform)
        s = np.minimum(np.multiply.outer(per_ccd, t[on]), ccd[on]).sum(axis=0)
        out[on] = s * fabric[on] / (s + fabric[on])
    return out


@dataclass(frozen=True)
class MtCopier:
    """mtcopy, the multi-threaded CPU copy of the series (v2/v3; v4 dropped it, so every
    version runs v3's): `threads` work items, one per thread, each a slice of the batch's
    folios (a folio is not split while there are at least as many folios as threads), queued
    with queue_work_on on CPUs chosen by `placement` (see thread_ccds); the migrating task
    queues them (thread_start_us each: queue_work_on, the IPI that wakes an idle kworker),
    then sleeps in flush_work until the last one is done and is woken once
    (dma.irq_wakeup_us: the same wake-up of a sleeping task). Before a work item copies, its
    kworker's CPU leaves its idle state: queue_work_on / queue_work (v2: system_unbound_wq)
    -> __queue_work -> kick_pool -> wake_up_process (kernel/workqueue.c) wakes a sleeping
    kworker on an idle CPU, and that exit is the idle-exit part of dma.irq_wakeup_us (beyond
    the interrupt, sched.completion_irq_us), the same latency DmaCopier's wake_s takes; one
    on the critical path (the IPIs go out back to back and the exits overlap). Copy rates:
    mt_copy_gbps."""

    threads: int = 4
    placement: str = "spread"
    name: str = "mt"

    def __post_init__(self):
        if not isinstance(self.threads, int | np.integer) or self.threads < 1:
            raise ValueError(f"threads: must be a whole number >= 1, got {self.threads!r}")
        if self.placement not in PLACEMENTS:
            raise ValueError(
                f"placement: must be one of {', '.join(PLACEMENTS)}; got {self.placement!r}"
            )

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
        rate = mt_copy_gbps(active.astype(np.int64), self.placement, platform) * GB / active
        per_thread_folios = np.ceil(nr_folios / active)
        slice_bytes = nr_bytes * per_thread_folios / np.maximum(nr_folios, 1.0)
        fixed = platform.copy.cpu_copy_fixed_us * US
        thread_s = per_thread_folios * fixed + slice_bytes / rate
        cpu_s = active * m.thread_start_us * US * scale
        # the kworkers' idle exit before they copy. Simplification: also charged when the
        # kworkers' CPUs run other tasks, where a wake-up preemption latency replaces it
        kworker_wake_us = wake_idle_exit_us(platform)
        wait_s = (thread_s + (platform.dma.irq_wakeup_us + kworker_wake_us) * US) * scale
        other = (nr_folios * fixed + nr_bytes / rate) * scale  # all threads' copy time
        z, none = _zeros(len(cpu_s)), _counts(len(cpu_s))
        return CopyCost(cpu_s + wait_s, cpu_s, wait_s, other, none, none, z)


def make_copier(
    mode: str,
    *,
    channels: int | None = None,
    threads: int | None = None,
    fail_rate: float = 0.0,
    min_batch_bytes: int = 0,
    rfc: str = "v4",
    fallback: str | None = None,
    placement: str = "spread",
) -> Copier:
    """The copier of a mode: `baseline`/`cpu` -> CpuCopier, `dma` -> DmaCopier, `mt` -> MtCopier."""
    if mode in ("baseline", "cpu"):
        return CpuCopier()
    if mode == "dma":
        return DmaCopier(
            channels=1 if channels is None else channels,
            fail_rate=fail_rate,
            min_batch_bytes=min_batch_bytes,
            rfc=rfc,
            fallback=fallback,
        )
    if mode == "mt":
        return MtCopier(threads=4 if threads is None else threads, placement=placement)
    raise ValueError(f"mode: must be one of baseline, dma, mt; got {mode!r}")
