"""What the what-if studies share: the fragmented node every compaction cell starts from
(``CompactionSetup``, from the ``whatif.node_bytes`` and ``whatif.allocations`` keys:
``SETUP_SCHEMA``), the compaction run metrics and their Parquet columns, seeds and argument
checks. Each study is one module beside this one (cluster_max, engine_class, hybrid,
fragmentation, latency).
Common random numbers: the cells of one study share their seeds wherever the compared
mechanism is not what draws the random numbers (the same fragmented node for every compaction
cell, the same trial noise for every batch limit or engine class of a throughput cell), so a
difference between two cells comes from the mechanism, not from the noise.

Compaction scale: the studies run compaction on a node of ``setup.node_bytes`` with
``setup.allocations`` order-9 allocations (the published run, 250 GB and 16384 allocations, is
the default). A smaller node with the allocations scaled by the same factor keeps the
pageblock layout and the share of the node allocated, but not everything: the per-CPU page
lists are sized from the zone, and they decide whether the freed block is captured inside
migrate_pages() or only in the drain (which costs one more batch from the next pageblock).
Down to 1/4 of the published node the run keeps the full-scale mechanism (3 migrate_pages()
calls and ~288 pages per allocation, wall time per allocation within 0.1%); from 1/8 down the
capture moves into migrate_pages() (2 calls, 256 pages). The default configuration uses 1/4.
Times and counts scale with the node; percentages and ratios do not.

Kernel-model simplification (inherited): the page-level run does not depend on any cost, so
a study simulates it once per (cluster_max, free_ratio, pattern) and costs it for every copy
back-end, load, channel count, threshold and engine class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

from migsim.cost.platform import Platform
from migsim.digest import cell_seed
from migsim.output.schema import F64, I64, _c, polars_dtype
from migsim.units import COMPACT_CLUSTER_MAX, format_size, parse_size

LOADS = ("idle", "busy")
COPIES = ("baseline", "dma")


# the seed of a cell of a study: migsim.digest.cell_seed (the workflow's cells use it too)
derive_seed = cell_seed


def compaction_mode(copy: str, load: str) -> str:
    """run_compaction's mode of a copy back-end (baseline, dma) on an idle or busy machine."""
    if copy not in COPIES:
        raise ValueError(f"copy: must be one of {', '.join(COPIES)}; got {copy!r}")
    if load not in LOADS:
        raise ValueError(f"load: must be one of {', '.join(LOADS)}; got {load!r}")
    return copy if load == "idle" else f"busy-{copy}"


def _check_choices(name: str, values: Sequence, allowed: Sequence) -> None:
    if not values:
        raise ValueError(f"{name}: must list at least one value")
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"{name}: {bad!r} not allowed; choose from {list(allowed)}")


def _check_ints(name: str, values: Sequence[int], lo: int, hi: int | None = None) -> None:
    if not values:
        raise ValueError(f"{name}: must list at least one value")
    for v in values:
        if isinstance(v, bool) or int(v) != v or v < lo or (hi is not None and v > hi):
            top = "" if hi is None else f"..{hi}"
            raise ValueError(f"{name}: every value must be a whole number in {lo}{top}, got {v!r}")


# ---------------------------------------------------------------------------------------------
# Compaction runs
# ---------------------------------------------------------------------------------------------


@dataclass
class CompactionSetup:
    """The fragmented node every compaction cell of a study starts from, and its scale.

    `node_bytes` bytes of node, `allocations` order-9 allocations per run, the fragmentation
    `free_ratio` and `pattern`, and one `seed` shared by every cell (common random numbers).

    The page-level run (what compaction isolates, migrates and captures) does not depend on
    any cost, so it is simulated once per (cluster_max, free_ratio, pattern) and costed for
    every copy back-end, load, channel count, threshold and engine class (as a fresh reboot
    before each published mode gives every mode the same run).
    """

    node_bytes: int = 250 * 2**30
    allocations: int = 16384
    free_ratio: float = 0.5
    pattern: str = "even"
    seed: int = 1
    _sims: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.node_bytes < 2**30 or self.node_bytes % (2 << 20):
            raise ValueError(
                f"node_bytes: must be a multiple of 2M and at least 1G, got {self.node_bytes}"
            )
        if self.allocations < 1:
            raise ValueError(f"allocations: must be >= 1, got {self.allocations}")
        if self.allocations * (2 << 20) >= self.node_bytes:
            raise ValueError(
                f"allocations: {self.allocations} order-9 allocations need "
                f"{format_size(self.allocations * (2 << 20))}, more than the node "
                f"({format_size(self.node_bytes)})"
            )

    def simulation(self, platform: Platform, cluster_max: int, free_ratio: float, pattern: str):
        """The page-level run of one (cluster_max, free_ratio, pattern), simulated once."""
        from migsim.studies.compaction import simulate

        key = (int(cluster_max), float(free_ratio), str(pattern))
        if key not in self._sims:
            self._sims[key] = simulate(
                platform,
                cluster_max=cluster_max,
                node_bytes=self.node_bytes,
                allocations=self.allocations,
                free_ratio=free_ratio,
                pattern=pattern,
                seed=self.seed,
            )
        return self._sims[key]

    def run(
        self,
        platform: Platform,
        *,
        copy: str,
        load: str,
        channels: int = 1,
        cluster_max: int = COMPACT_CLUSTER_MAX,
        min_batch_bytes: int = 0,
        free_ratio: float | None = None,
        pattern: str | None = None,
    ) -> dict:
        """One compaction cell costed on `platform`; returns its row (the compaction run row
        contract)."""
        free_ratio = self.free_ratio if free_ratio is None else free_ratio
        pattern = self.pattern if pattern is None else pattern
        sim = self.simulation(platform, cluster_max, free_ratio, pattern)
        result = sim.result(
            platform,
            mode=compaction_mode(copy, load),
            channels=channels,
            min_batch_bytes=min_batch_bytes,
        )
        return result.row()


_RUN_METRICS = (
    "wall_ms",
    "user_pct",
    "sys_pct",
    "idle_pct",
    "hog_iterations",
    "pages_migrated",
    "dma_copies",
    "migrate_calls",
    "alloc_success",
    "alloc_fail",
    "capture_in_drain",
    "pages_after_capture",
)


def _metrics(row: dict) -> dict:
    out = {k: row[k] for k in _RUN_METRICS}
    out["sys_ms"] = row["wall_ms"] * row["sys_pct"] / 100.0
    out["us_per_page"] = (
        row["wall_ms"] * 1e3 / row["pages_migrated"] if row["pages_migrated"] else None
    )
    return out


def _frame(rows: list[dict], keys: dict[str, Any]) -> pl.DataFrame:
    """The rows of a compaction study: its key columns (`keys`, name -> Polars type) and the
    run metrics (``_RUN``)."""
    import polars as pl

    dtypes = {c.name: polars_dtype(c.dtype) for c in _RUN}
    return pl.DataFrame(rows, schema={**keys, **dtypes}, strict=False)


def _pct_change(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """(a / b - 1) in percent."""
    return (a / b - 1.0) * 100.0


def _pct_word(pct: float, more: str, less: str) -> str:
    return f"{abs(pct):.1f}% {more if pct > 0 else less}"


_RUN = (
    _c("wall_ms", F64, "ms", "wall time of the allocation loop"),
    _c("user_pct", F64, "%", "migrating CPU in user mode (the competing task)"),
    _c("sys_pct", F64, "%", "migrating CPU in the kernel"),
    _c("idle_pct", F64, "%", "migrating CPU idle"),
    _c("hog_iterations", F64, "iterations", "competing-task iterations (null on an idle machine)"),
    _c("pages_migrated", I64, "pages", "base pages migrated"),
    _c("dma_copies", I64, "folios", "folios copied by the DMA engine"),
    _c("migrate_calls", I64, "calls", "migrate_pages() calls"),
    _c("alloc_success", I64, "allocations", "order-9 allocations that succeeded"),
    _c("alloc_fail", I64, "allocations", "order-9 allocations that failed"),
    _c("capture_in_drain", I64, "allocations", "blocks captured only in the pcp drain"),
    _c(
        "pages_after_capture",
        I64,
        "pages",
        "pages migrated after the allocation's block was already free (the batch from the "
        "next pageblock before the capture is seen)",
    ),
    _c("sys_ms", F64, "ms", "kernel CPU time: wall_ms x sys_pct / 100"),
    _c("us_per_page", F64, "us", "wall time per migrated page (null when none migrated)"),
)

_RUN_NULLS = {"hog_iterations", "dma_copies", "us_per_page"}


# The keys of the ``whatif`` section shared by the compaction studies (the schema fragment of
# workflow/schemas/config.schema.yaml; tests/test_studies.py checks that they agree).
SETUP_SCHEMA: dict[str, Any] = {
    "node_bytes": {
        "description": "node size of the compaction studies (a scaled-down published node)",
        "$ref": "#/$defs/size",
    },
    "allocations": {
        "description": "order-9 allocations per compaction run of the studies",
        "type": "integer",
        "minimum": 1,
    },
}


def size_or_zero(value: Any, name: str) -> int:
    """A size in bytes, where 0 (or "0") is allowed."""
    if value in (0, "0"):
        return 0
    return parse_size(value, name=name)


def setup_params(config: Mapping) -> dict[str, Any]:
    """The fragmented node of the compaction studies: ``whatif.node_bytes`` and
    ``whatif.allocations``, the free ratio and pattern of ``fragmentation``."""
    wi = config["whatif"]
    return {
        "node_bytes": parse_size(wi["node_bytes"], name="whatif.node_bytes"),
        "allocations": int(wi["allocations"]),
        "free_ratio": float(config["fragmentation"]["free_ratio"]),
        "pattern": str(config["fragmentation"]["pattern"]),
    }


def run_study_fn(
    study: Callable[..., pl.DataFrame], platform: Platform, params: Mapping, *, seed: bool = False
) -> pl.DataFrame:
    """A study's summary rows for its job parameters `params` (its ``params()`` plus the seed):
    the section's keys as keyword arguments, the fragmented node (``setup``) built with the
    job's seed where the study has one, and the seed itself where the study takes it (`seed`)."""
    kwargs = dict(params["kwargs"])
    if seed:
        kwargs["seed"] = params["seed"]
    if "setup" in params:
        kwargs["setup"] = CompactionSetup(seed=params["seed"], **params["setup"])
    return study(platform, **kwargs)


# Conversions of a section's values into a job's keyword arguments (value, its key -> value).
def as_size(value: Any, key: str) -> int:
    """A size in bytes."""
    return parse_size(value, name=key)


def as_float(value: Any, key: str) -> float:
    return float(value)


def as_floats(values: Sequence, key: str) -> list[float]:
    return [float(v) for v in values]


def as_strings(values: Sequence, key: str) -> list[str]:
    return [str(v) for v in values]


def as_sizes_or_zero(values: Sequence, key: str) -> list[int]:
    """Sizes in bytes, where 0 is allowed."""
    return [size_or_zero(v, f"{key}[{i}]") for i, v in enumerate(values)]


def section_study(
    *,
    name: str,
    title: str,
    config_schema: Mapping[str, Any],
    schema: Any,
    study: Callable[..., pl.DataFrame],
    tables: Callable,
    figure: Callable,
    findings: Callable,
    caption: str,
    convert: Mapping[str, Callable[[Any, str], Any]] | None = None,
    setup: bool = True,
    seed: bool = False,
    total_bytes: bool = False,
) -> Any:
    """The ``Study`` of a what-if module whose job is ``study(platform, **section)``: its
    section ``whatif.<name>`` as keyword arguments (each key of `convert` converted by its
    function), the fragmented node of the compaction studies (``setup``: ``setup_params``,
    built with the job's seed; its allocations checked against the node) and the job's seed
    where the study takes one (`seed`); `total_bytes`: the section's ``total_bytes`` must be a
    multiple of each of its ``folio_sizes``."""
    from migsim.studies import Study, section

    def params(config: Mapping) -> dict[str, Any]:
        """The job's parameters from the configuration (JSON-serialisable)."""
        sec = section(config, name)
        for key, fn in (convert or {}).items():
            sec[key] = fn(sec[key], f"whatif.{name}.{key}")
        return {"kwargs": sec, **({"setup": setup_params(config)} if setup else {})}

    def run(platform: Platform, params: Mapping) -> pl.DataFrame:
        """The study's summary rows for the job parameters `params` (``params()`` plus the
        seed)."""
        return run_study_fn(study, platform, params, seed=seed)

    def check(config: Mapping) -> None:
        """Checks of the section the JSON schema cannot express (ValueError naming the key)."""
        if setup:
            check_setup(config)
        if total_bytes:
            check_total_bytes(config, name)

    return Study(
        name=name,
        title=title,
        config_schema=config_schema,
        schema=schema,
        params=params,
        run=run,
        tables=tables,
        figure=figure,
        findings=findings,
        check=check,
        caption=caption,
    )


def check_setup(config: Mapping) -> None:
    """The studies' allocations fit in their node (ValueError naming the key)."""
    wi = config["whatif"]
    node = parse_size(wi["node_bytes"], name="whatif.node_bytes")
    need = int(wi["allocations"]) * (2 << 20)
    if need >= node:
        raise ValueError(
            f"config: whatif.allocations: {wi['allocations']} order-9 allocations need "
            f"{need >> 20}M, more than the node (whatif.node_bytes = {wi['node_bytes']})"
        )


def check_total_bytes(config: Mapping, name: str) -> None:
    """``whatif.<name>.total_bytes`` is a multiple of every folio size of the section."""
    sec = config["whatif"][name]
    total = parse_size(sec["total_bytes"], name=f"whatif.{name}.total_bytes")
    for i, fs in enumerate(sec["folio_sizes"]):
        fb = parse_size(fs, name=f"whatif.{name}.folio_sizes[{i}]")
        if total % fb:
            raise ValueError(
                f"config: whatif.{name}.total_bytes: {sec['total_bytes']} is not a multiple of "
                f"folio size {fs}"
            )
