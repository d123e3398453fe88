"""migrate_pages(): batches of folios, unmap -> one batched TLB flush -> batch copy -> move.

Modelled on mm/migrate.c (migrate_pages, migrate_pages_batch) with the batch-copy RFC: the
folio list is cut into batches of at most ``batch_limit`` base pages (NR_MAX_BATCHED_MIGRATION);
for each batch every folio is unmapped (destination allocated, folio locked, PTEs replaced by
migration entries), then *one* TLB flush covers the batch, then the whole batch is copied by a
copier (CPU, DMA or threads), then each folio is moved (flags and mapping copied, PTEs
restored, source freed). A folio whose offloaded copy failed is copied by the CPU on its own
in the move phase.

Costs are computed for all batches at once (``cost_batches``), so callers that issue many
migrate_pages() calls (compaction) can cost them in one vector operation.

Simplifications: no -EAGAIN/-EBUSY retries (every isolated folio migrates: the modelled
folios are anonymous, unshared and not under writeback), destination allocation cannot fail
here (compaction's free scanner decides where pages go), folios of one batch are costed as a
group (the per-folio order inside a batch only matters for the first-folio latency).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from migsim.cost.copiers import US, Copier, CpuCopier, cpu_copy_seconds
from migsim.cost.platform import Platform
from migsim.units import PAGE_SIZE, ptes_per_folio


@dataclass
class BatchCosts:
    """Per-batch costs of migrate_pages() (arrays, one entry per batch; seconds, counts)."""

    nr_folios: np.ndarray
    nr_pages: np.ndarray
    unmap_s: np.ndarray  # unmap phase (CPU, sys)
    flush_s: np.ndarray  # batched TLB flush (CPU, sys)
    copy_s: np.ndarray  # wall time of the batch copy step
    copy_cpu_s: np.ndarray  # migrating CPU busy during the copy step
    copy_wait_s: np.ndarray  # migrating CPU asleep waiting for the copy
    copy_wake_s: np.ndarray  # part of copy_wait_s only an idle CPU pays (idle-state exit)
    other_cpu_s: np.ndarray  # CPU time of copy threads on other CPUs
    copy_irq_s: np.ndarray  # completion-interrupt CPU time of the copy (engine's irq CPU)
    move_s: np.ndarray  # move phase incl. CPU fallback copies (CPU, sys)
    fallback_s: np.ndarray  # part of move_s spent copying failed folios with the CPU
    dma_copies: np.ndarray  # folios copied by the offload engine
    fallbacks: np.ndarray  # folios that fell back to a CPU copy

    @property
    def wall_s(self) -> np.ndarray:
        return self.unmap_s + self.flush_s + self.copy_s + self.move_s

    @property
    def sys_s(self) -> np.ndarray:
        """Migrating CPU busy in the kernel, per batch."""
        return self.unmap_s + self.flush_s + self.copy_cpu_s + self.move_s

    @property
    def wait_s(self) -> np.ndarray:
        """Migrating CPU asleep, per batch."""
        return self.copy_wait_s


def cost_batches(
    nr_folios: np.ndarray,
    nr_pages: np.ndarray,
    nr_ptes: np.ndarray,
    copier: Copier,
    platform: Platform,
    rng: np.random.Generator,
    scale: float = 1.0,
) -> BatchCosts:
    """Cost of migrating batches that hold `nr_folios` folios, `nr_pages` base pages mapped by
    `nr_ptes` page-table entries (PMD mappings count one); `scale` multiplies every cost (the
    trial's noise factor)."""
    nr_folios = np.asarray(nr_folios, dtype=np.int64)
    nr_pages = np.asarray(nr_pages, dtype=np.int64)
    nr_ptes = np.asarray(nr_ptes, dtype=np.float64)
    c = platform.cpu
    per_folio_work = (nr_folios * c.folio_fixed_us + nr_ptes * c.pte_us) * US * scale
    unmap_s = per_folio_work * c.unmap_share_frac
    move_s = per_folio_work * (1.0 - c.unmap_share_frac)
    flush_s = np.where(nr_folios > 0, c.tlb_flush_us * US * scale, 0.0)
    nr_bytes = nr_pages.astype(np.float64) * PAGE_SIZE
    cc = copier.copy_batches(nr_folios, nr_bytes, platform, rng, scale)
    # failed folios are copied by the CPU, one folio_copy each, with the batch's mean size
    mean_bytes = np.where(nr_folios > 0, nr_bytes / np.maximum(nr_folios, 1), 0.0)
    fallback_s = cpu_copy_seconds(cc.failed, cc.failed * mean_bytes, platform) * scale
    return BatchCosts(
        nr_folios=nr_folios,
        nr_pages=nr_pages,
        unmap_s=unmap_s,
        flush_s=flush_s,
        copy_s=cc.wall_s,
        copy_cpu_s=cc.cpu_s,
        copy_wait_s=cc.wait_s,
        copy_wake_s=cc.wake_s,
        other_cpu_s=cc.other_cpu_s,
        copy_irq_s=cc.irq_s,
        move_s=move_s + fallback_s,
        fallback_s=fallback_s,
        dma_copies=np.asarray(cc.offloaded, dtype=np.int64),
        fallbacks=np.asarray(cc.failed, dtype=np.int64),
    )


@dataclass
class MigrateResult:
    """Outcome of one migrate_pages() call (seconds, folios, base pages)."""

    wall_s: float
    call_s: float  # move_pages() work outside migrate_pages (syscall, lru_cache_disable, lookups)
    unmap_s: float
    flush_s: float
    copy_s: float
    move_s: float
    fallback_s: float
    sys_s: float  # migrating CPU busy (kernel time)
    idle_s: float  # migrating CPU asleep waiting for offloaded copies
    other_cpu_s: float  # copy threads' CPU time on other CPUs
    irq_s: float  # completion interrupts of the offload engine (on the CPU its MSI targets)
    first_folio_s: float  # from the start of migrate_pages until the first folio is mapped again
    nr_batches: int
    nr_folios: int
    nr_pages: int  # pgmigrate_success
    dma_copies: int  # dcbm folios_migrated
    fallbacks: int  # offloaded copies that failed and were redone by the CPU

    def as_dict(self) -> dict:
        return asdict(self)


def split_batches(folio_pages: np.ndarray, batch_limit: int) -> np.ndarray:
    """Batch index of each folio: consecutive folios fill a batch up to `batch_limit` base
    pages; a folio larger than the limit gets a batch of its own (as migrate_pages_batch does
    when the first folio of a batch already exceeds it)."""
    folio_pages = np.asarray(folio_pages, dtype=np.int64)
    if len(folio_pages) == 0:
        return np.zeros(0, dtype=np.int64)
    if np.all(folio_pages == folio_pages[0]):  # the common case: one folio size
        per_batch = max(1, batch_limit // int(folio_pages[0]))
        return np.arange(len(folio_pages), dtype=np.int64) // per_batch
    # mixed sizes: greedy fill, vectorised by cutting the running page count at multiples
    # of the limit (a folio starts a new batch when it would cross the limit)
    # Simplification: the cut follows running totals, which equals the greedy fill whenever
    # folio sizes divide the limit (all power-of-two sizes below it).
    start = np.concatenate(([0], np.cumsum(folio_pages)[:-1]))
    return start // batch_limit


def uniform_batch_totals(nr_folios: int, folio_pages: int, batch_limit: int):
    """Folios, base pages and mapping entries of each batch of `nr_folios` folios of
    `folio_pages` base pages: whole batches plus a remainder."""
    per_batch = max(1, batch_limit // folio_pages)
    full, rest = divmod(nr_folios, per_batch)
    nr = np.full(full + (rest > 0), per_batch, dtype=np.int64)
    if rest:
        nr[-1] = rest
    ptes = ptes_per_folio(folio_pages * PAGE_SIZE)
    return nr, nr * folio_pages, (nr * ptes).astype(np.float64)


def batch_totals(folio_pages: np.ndarray, batch_limit: int):
    """Folios, base pages and mapping entries of each batch of the folio list."""
    if (
        len(folio_pages)
        and folio_pages[0] == folio_pages[-1]
        and np.all(folio_pages == folio_pages[0])
    ):
        # one folio size (the throughput experiment)
        return uniform_batch_totals(len(folio_pages), int(folio_pages[0]), batch_limit)
    batch = split_batches(folio_pages, batch_limit)
    nb = int(batch[-1]) + 1 if len(batch) else 0
    uniq, inverse = np.unique(folio_pages, return_inverse=True)
    ptes = np.array([ptes_per_folio(int(p) * PAGE_SIZE) for p in uniq], dtype=np.float64)
    nr_folios = np.bincount(batch, minlength=nb).astype(np.int64)
    nr_pages = np.bincount(batch, weights=folio_pages, minlength=nb).astype(np.int64)
    nr_ptes = np.bincount(batch, weights=ptes[inverse], minlength=nb)
    return nr_folios, nr_pages, nr_ptes


def migrate_pages(
    folio_pages: np.ndarray,
    copier: Copier | None,
    platform: Platform,
    *,
    batch_limit: int,
    rng: np.random.Generator,
    scale: float = 1.0,
    batch_copy: bool = True,
    syscall: bool = False,
) -> MigrateResult:
    """Migrate a list of folios of `folio_pages` base pages each (PTE- or PMD-mapped as the
    kernel maps that size), in batches of at most `batch_limit` base pages.

    With `batch_copy` the RFC's order is used (copy the whole batch, then move each folio);
    without, the vanilla order (copy each folio inside the move loop): same totals, but the
    first folio is usable sooner.

    With `syscall` the call is a move_pages() system call: its entry, ``lru_add_drain`` and
    one address lookup per folio (``do_pages_move`` -> ``add_folio_for_migration``; the
    throughput benchmark passes one address per folio) come before the migration.
    """
    if batch_limit < 1:
        raise ValueError(f"batch_limit: must be >= 1 base page, got {batch_limit}")
    copier = copier or CpuCopier()
    folio_pages = np.asarray(folio_pages, dtype=np.int64)
    if np.any(folio_pages < 1):
        raise ValueError("folio_pages: every folio must have at least one base page")
    totals = batch_totals(folio_pages, batch_limit)
    return migrate_trials(
        totals, len(folio_pages), copier, platform, rng, np.array([scale]), batch_copy, syscall
    )[0]


def move_pages_call_us(platform: Platform, nr_addresses: int):
    """move_pages() work outside migrate_pages, us per call: the syscall (cpu.syscall_us),
    do_pages_move's lru_cache_disable (cpu.lru_cache_disable_us) and one lookup per address
    passed (cpu.addr_lookup_us)."""
    c = platform.cpu
    return c.syscall_us + c.lru_cache_disable_us + nr_addresses * c.addr_lookup_us


def migrate_trials(
    totals: tuple[np.ndarray, np.ndarray, np.ndarray],
    nr_addresses: int,
    copier: Copier,
    platform: Platform,
    rng: np.random.Generator,
    scales: np.ndarray,
    batch_copy: bool = True,
    syscall: bool = False,
) -> list[MigrateResult]:
    """One migrate_pages() call (see migrate_pages) per entry of `scales` (each trial's noise
    factor), all costed in one vectorised cost_batches call; `totals` are the batches'
    folios, pages and mapping entries (batch_totals), `nr_addresses` the addresses passed."""
    nr_folios, nr_pages, nr_ptes = totals
    nb, nt = len(nr_folios), len(scales)
    scale = np.repeat(np.asarray(scales, dtype=np.float64), nb)
    bc = cost_batches(
        np.tile(nr_folios, nt), np.tile(nr_pages, nt), np.tile(nr_ptes, nt),
        copier, platform, rng, scale,
    )  # fmt: skip
    call = np.zeros(nt)
    if syscall:
        call = move_pages_call_us(platform, nr_addresses) * US * scales

    def per_trial(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64).reshape(nt, nb).sum(axis=1) if nb else np.zeros(nt)

    sums = {k: per_trial(getattr(bc, k)) for k in ("unmap_s", "flush_s", "copy_s", "move_s")}
    sums.update({k: per_trial(getattr(bc, k)) for k in ("fallback_s", "sys_s", "wait_s")})
    sums.update({k: per_trial(getattr(bc, k)) for k in ("other_cpu_s", "copy_irq_s", "wall_s")})
    copies, falls = per_trial(bc.dma_copies), per_trial(bc.fallbacks)
    out = []
    for t in range(nt):
        if nb:
            i = t * nb  # the trial's first batch
            f0 = max(int(nr_folios[0]), 1)
            if batch_copy:  # first folio usable after the whole first batch copy and its move
                first = bc.unmap_s[i] + bc.flush_s[i] + bc.copy_s[i] + bc.move_s[i] / f0
            else:  # vanilla: the first folio is copied and moved before the others are copied
                first = bc.unmap_s[i] + bc.flush_s[i] + (bc.copy_s[i] + bc.move_s[i]) / f0
        else:
            first = 0.0
        out.append(
            MigrateResult(
                wall_s=float(sums["wall_s"][t] + call[t]),
                call_s=float(call[t]),
                unmap_s=float(sums["unmap_s"][t]),
                flush_s=float(sums["flush_s"][t]),
                copy_s=float(sums["copy_s"][t]),
                move_s=float(sums["move_s"][t]),
                fallback_s=float(sums["fallback_s"][t]),
                sys_s=float(sums["sys_s"][t] + call[t]),
                idle_s=float(sums["wait_s"][t]),
                other_cpu_s=float(sums["other_cpu_s"][t]),
                irq_s=float(sums["copy_irq_s"][t]),
                first_folio_s=float(first),
                nr_batches=nb,
                nr_folios=int(nr_folios.sum()),
                nr_pages=int(nr_pages.sum()),
                dma_copies=int(copies[t]),
                fallbacks=int(falls[t]),
            )
        )
    return out
