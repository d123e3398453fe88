"""The allowed range of every input, defined once.

The engine checks its arguments with these limits, the command line's argument types and
checks read them (``migsim.cli.args``), and the workflow's JSON schema
(``workflow/schemas/config.schema.yaml``) is checked against them before any job
(:func:`check_config_values`) and by a test that compares the schema's bounds with
:data:`SCHEMA_KEYS`. Every check raises :class:`LimitError` with one line that names the value
as its caller calls it (an engine argument ``fail_rate``, a flag ``--fail-rate``, a config key
``throughput.fail_rate``), states the allowed range and repeats the value given::

    --fail-rate: must be a number in [0, 1], got nan

A count the platform narrows (DMA channels, copy threads) is checked with the platform's top
and the reason (``hi=``, ``why=``), so the first message already states the platform's range.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from migsim.units import MAX_PAGE_ORDER, PAGE_SIZE, PAGEBLOCK_NR_PAGES, format_size, parse_size


class LimitError(ValueError):
    """A value is outside its allowed range; the message names it and states the range."""


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _num(x: float) -> str:
    """A bound as the messages print it: whole numbers in full (262144), others short (0.5)."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


class Limit(NamedTuple):
    """A number's allowed range: [lo, hi] (an end is open when `lo_open`/`hi_open`, absent
    when None); `integer` asks for a whole number. `what` says what it counts, in which unit.
    (A NamedTuple, immutable like a frozen dataclass: `migsim <command> --help` builds its
    flags from these without importing dataclasses and inspect, ~8 ms.)"""

    what: str
    lo: float | None = None
    hi: float | None = None
    integer: bool = False
    lo_open: bool = False
    hi_open: bool = False

    def text(self, hi: float | None = None) -> str:
        """The range as the messages state it: ``1..16``, ``>= 1``, ``[0, 1)``."""
        hi = self.hi if hi is None else hi
        if self.integer:
            lo = self.lo + 1 if self.lo_open else self.lo
            if hi is None:
                return f"a whole number >= {_num(lo)}"
            return f"a whole number in {_num(lo)}..{_num(hi)}"
        if hi is None:
            return f"a number {'>' if self.lo_open else '>='} {_num(self.lo)}"
        lo_b, hi_b = ("(" if self.lo_open else "["), (")" if self.hi_open else "]")
        return f"a number in {lo_b}{_num(self.lo)}, {_num(hi)}{hi_b}"

    def check(self, value: Any, name: str, *, hi: float | None = None, why: str = "") -> Any:
        """`value` if it is in range (`hi` narrows the top, `why` says by what), else
        LimitError naming `name`. NaN and infinities are never in range."""
        rng = self.text(hi) + (f" ({why})" if why else "")
        bad = LimitError(f"{name}: must be {rng}, got {_show(value)}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise bad
        if self.integer and not isinstance(value, numbers.Integral):
            if not (math.isfinite(value) and float(value).is_integer()):
                raise bad
            value = int(value)
        if not math.isfinite(value):
            raise bad
        top = self.hi if hi is None else hi
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            raise bad
        if top is not None and (value >= top if self.hi_open else value > top):
            raise bad
        return value

    def schema(self) -> dict[str, Any]:
        """The JSON-schema bounds of this limit (what the schema file must say)."""
        out: dict[str, Any] = {"type": "integer" if self.integer else "number"}
        if self.lo is not None:
            out["exclusiveMinimum" if self.lo_open else "minimum"] = self.lo
        if self.hi is not None:
            out["exclusiveMaximum" if self.hi_open else "maximum"] = self.hi
        return out


class SizeLimit(NamedTuple):
    """A size in bytes: a whole number of `step` bytes in [lo, hi]."""

    what: str
    lo: int
    hi: int
    step: int = PAGE_SIZE

    def text(self) -> str:
        return (
            f"a size from {format_size(self.lo)} to {format_size(self.hi)}, "
            f"a whole number of {format_size(self.step)}"
        )

    def parse(self, value: str | int, name: str) -> int:
        """Parse `value` (4K, 2M, 1G, 1.5G or a byte count) and check it; bytes."""
        try:
            nbytes = parse_size(value, name=name)
        except ValueError:
            raise LimitError(f"{name}: must be {self.text()}, got {_show(value)}") from None
        if not self.lo <= nbytes <= self.hi or nbytes % self.step:
            raise LimitError(f"{name}: must be {self.text()}, got {_show(value)}")
        return nbytes


# --- the limits ------------------------------------------------------------------------------

SEED = Limit("seed of the random generator", 0, 2**63 - 1, integer=True)
TRIALS = Limit("trials per throughput cell", 1, 1000, integer=True)
RUNS = Limit("runs per compaction mode", 1, 100, integer=True)
# dcbm's nr_dma_chan bound; a platform narrows it to the channels it has (dma.max_channels_count)
CHANNELS = Limit("DMA channels", 1, 256, integer=True)
# the multi-threaded copier's bound; a platform narrows it (mt.max_threads_count)
THREADS = Limit("copy threads", 1, 1024, integer=True)
# COMPACT_CLUSTER_MAX (32 in mainline); at most one pageblock of pages per migrate_pages() call
CLUSTER_MAX = Limit("pages isolated per migrate_pages() call", 1, PAGEBLOCK_NR_PAGES, integer=True)
ORDER = Limit("allocation order", 0, MAX_PAGE_ORDER, integer=True)
ALLOCATIONS = Limit("allocations of the allocation loop", 1, None, integer=True)
FAIL_RATE = Limit("DMA descriptor failure probability", 0.0, 1.0)
FREE_RATIO = Limit("fraction of every 2M region freed", 0.0, 1.0, hi_open=True)
OPEN_FRACTION = Limit("a fraction strictly between 0 and 1", 0.0, 1.0, lo_open=True, hi_open=True)
LATENCY_SCALE = Limit("factor on the DMA latency parameters", 0.0, 1.0, lo_open=True)
KNEE_PCT = Limit("share of the best throughput, %", 0.0, 100.0, lo_open=True)
MIN_BATCH_BYTES = Limit("smallest batch offloaded to DMA, bytes", 0, None, integer=True)
REPEATS = Limit("repetitions of every probe cell", 1, None, integer=True)
TWIN_RUNS = Limit("host twin runs kept (each with its own snapshots)", 1, None, integer=True)
# the host twin's region: one pageblock up; what fits this machine is checked apart
# (migsim.host.probe.check_size_cap: at most a quarter of MemAvailable)
TWIN_SIZE = SizeLimit("region a host twin run fragments", PAGEBLOCK_NR_PAGES * PAGE_SIZE, 1 << 46)
# a pageblock-aligned node from two pageblocks up to 64T (MAX_PHYSMEM_BITS = 46 with 4-level
# paging on x86_64); what fits this machine's memory is checked apart (check_memory)
NODE_BYTES = SizeLimit("NUMA node size", 2 * PAGEBLOCK_NR_PAGES * PAGE_SIZE, 1 << 46,
                       PAGEBLOCK_NR_PAGES * PAGE_SIZE)  # fmt: skip
# a Zone's frames (migsim.kernel.zone): whole pageblocks, one up to a 64T node's worth
ZONE_PAGES = Limit("pages of a zone", PAGEBLOCK_NR_PAGES,
                   NODE_BYTES.hi // PAGE_SIZE, integer=True)  # fmt: skip
TOTAL_BYTES = SizeLimit("bytes moved per throughput trial", PAGE_SIZE, 1 << 40)
# NR_MAX_BATCHED_MIGRATION in base pages: up to a batch holding the largest total
BATCH_LIMIT = Limit("base pages per migrate_pages() batch", 1, TOTAL_BYTES.hi // PAGE_SIZE,
                    integer=True)  # fmt: skip

# The folio sizes the model migrates: the anonymous (m)THP orders 0..9 (4K to PMD size, 2M) and
# the 1G hugetlb page (PUD size). x86_64 has no folio between 4M and 512M: page cache and
# anonymous large folios stop at PMD order, hugetlb offers 2M and 1G only. (A 1G folio is
# costed as 512 PMD-mapped pieces, see units.ptes_per_folio.)
FOLIO_SIZES: tuple[int, ...] = (*(PAGE_SIZE << k for k in range(10)), 1 << 30)
FOLIO_SIZE_LABELS: tuple[str, ...] = tuple(format_size(b) for b in FOLIO_SIZES)


def check_folio_size(value: str | int, name: str) -> int:
    """A folio size (label or bytes) the model migrates; bytes."""
    allowed = f"one of {', '.join(FOLIO_SIZE_LABELS)} (mTHP orders 0..9 and the 1G hugetlb page)"
    try:
        nbytes = parse_size(value, name=name)
    except ValueError:
        nbytes = None
    if nbytes not in FOLIO_SIZES:
        raise LimitError(f"{name}: must be {allowed}, got {_show(value)}")
    return nbytes


# --- memory ----------------------------------------------------------------------------------

# Bytes the engine holds per element, measured with tracemalloc (tests/test_limits.py checks
# that the estimate covers the measured peak and is at most three times it): a throughput run
# costs its folios batch by batch for all trials at once, holding per batch about 25 B plus
# per trial some twenty to thirty int64/float64 values (counts and phase times: 176 B measured
# for baseline and dma, 241 B for mt), nothing per folio; a compaction run keeps per base page the page state (uint8) and the content
# tag's uint8 code (kernel/tags.py), plus per pageblock arrays and the recount's chunk temporaries: about 4.3 B measured on a
# 2 GiB node (tests/test_limits.py), less on larger ones, where a chunk is a smaller share of the zone.
THROUGHPUT_BYTES_PER_BATCH = 32
THROUGHPUT_BYTES_PER_BATCH_TRIAL = 256
COMPACTION_BYTES_PER_PAGE = 6
MEMORY_BASE_BYTES = 64 << 20  # interpreter, imports and small tables


def throughput_memory(total_bytes: int, folio_bytes: int, batch_limit: int, trials: int) -> int:
    """Bytes a throughput run needs (estimate, covering the measured peak)."""
    nr_folios = total_bytes // folio_bytes
    per_batch = max(1, batch_limit * PAGE_SIZE // folio_bytes)
    nr_batches = -(-nr_folios // per_batch)
    per = THROUGHPUT_BYTES_PER_BATCH + trials * THROUGHPUT_BYTES_PER_BATCH_TRIAL
    return MEMORY_BASE_BYTES + nr_batches * per


def compaction_memory(node_bytes: int) -> int:
    """Bytes a compaction run on a node of `node_bytes` needs (estimate)."""
    return MEMORY_BASE_BYTES + node_bytes // PAGE_SIZE * COMPACTION_BYTES_PER_PAGE


def available_memory() -> int | None:
    """MemAvailable of this machine in bytes (None where /proc/meminfo does not say)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(need: int, name: str, what: str) -> None:
    """Refuse a run that needs more memory than this machine has available, before any
    allocation; `name` is the argument to change, `what` describes the run. The environment
    variable MIGSIM_MEMORY_AVAILABLE (bytes) stands in for MemAvailable (tests, cgroups)."""
    env = os.environ.get("MIGSIM_MEMORY_AVAILABLE")
    avail = int(env) if env else available_memory()
    if avail is not None and need > avail:
        raise LimitError(
            f"{name}: {what} needs about {need / 1e9:.1f} GB of memory, more than the "
            f"{avail / 1e9:.1f} GB this machine has available"
        )


# --- the workflow configuration --------------------------------------------------------------

# Every bounded number of the configuration schema, by its key (``[]``: every element of a
# list). The schema file states the same bounds (checked by tests/test_limits.py), and
# check_config_values checks each value against these, so NaN and infinities never pass.
SCHEMA_KEYS: dict[str, Limit] = {
    "seed": SEED,
    "throughput.channels[]": CHANNELS,
    "throughput.threads[]": THREADS,
    "throughput.trials": TRIALS,
    "throughput.batch_limit": BATCH_LIMIT,
    "throughput.fail_rate": FAIL_RATE,
    "throughput.min_batch_bytes": MIN_BATCH_BYTES,
    "fragmentation.free_ratio": FREE_RATIO,
    "compaction.channels": CHANNELS,
    "compaction.cluster_max": CLUSTER_MAX,
    "compaction.allocations": ALLOCATIONS,
    "compaction.runs": RUNS,
    "compaction.fail_rate": FAIL_RATE,
    "compaction.min_batch_bytes": MIN_BATCH_BYTES,
    "host.ratios[]": OPEN_FRACTION,
    "host.repeats": REPEATS,
    "host.seed": SEED,
    "host.calibration_ratio": OPEN_FRACTION,
    "host.twin.free_ratio": OPEN_FRACTION,
    "host.twin.runs": TWIN_RUNS,
    "host.twin.seed": SEED,
    "whatif.allocations": ALLOCATIONS,
    "whatif.cluster_max.cluster_max[]": CLUSTER_MAX,
    "whatif.cluster_max.channels[]": CHANNELS,
    "whatif.engine_class.latency_scales[]": LATENCY_SCALE,
    "whatif.engine_class.channels[]": CHANNELS,
    "whatif.engine_class.trials": TRIALS,
    "whatif.engine_class.compaction_channels[]": CHANNELS,
    "whatif.hybrid.channels[]": CHANNELS,
    "whatif.fragmentation.free_ratios[]": OPEN_FRACTION,
    "whatif.fragmentation.channels": CHANNELS,
    "whatif.latency.batch_limits[]": BATCH_LIMIT,
    "whatif.latency.channels[]": CHANNELS,
    "whatif.latency.trials": TRIALS,
    "whatif.latency.knee_pct": KNEE_PCT,
}
# Sizes of the configuration (strings such as 1G, which the schema only checks for form).
SIZE_KEYS: dict[str, SizeLimit] = {
    "throughput.total_bytes": TOTAL_BYTES,
    "fragmentation.node_bytes": NODE_BYTES,
    "whatif.node_bytes": NODE_BYTES,
    "whatif.engine_class.total_bytes": TOTAL_BYTES,
    "whatif.latency.total_bytes": TOTAL_BYTES,
    "host.twin.size": TWIN_SIZE,
}
# Lists of DMA channel counts the platform narrows (dma.max_channels_count).
CHANNEL_KEYS = tuple(k for k, v in SCHEMA_KEYS.items() if v is CHANNELS)
THREAD_KEYS = tuple(k for k, v in SCHEMA_KEYS.items() if v is THREADS)


def config_values(config: Mapping, key: str) -> Iterator[tuple[str, Any]]:
    """(key as the messages name it, value) of a SCHEMA_KEYS key in `config`, e.g.
    ``whatif.latency.channels[]`` -> ("whatif.latency.channels[1]", 16), ...; nothing where
    the section or key is absent."""
    node: Any = config
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node, Mapping) or part not in node:
            return
        node = node[part]
    last = parts[-1]
    many = last.endswith("[]")
    last = last.removesuffix("[]")
    if not isinstance(node, Mapping) or last not in node:
        return
    prefix = ".".join([*parts[:-1], last])
    if many:
        if isinstance(node[last], list):
            for i, v in enumerate(node[last]):
                yield f"{prefix}[{i}]", v
    else:
        yield prefix, node[last]


def non_finite(obj: Any, path: str = "") -> Iterator[tuple[str, float]]:
    """(key, value) of every NaN or infinite number anywhere in a configuration."""
    if isinstance(obj, float) and not math.isfinite(obj):
        yield path, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from non_finite(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from non_finite(v, f"{path}[{i}]")


def check_config_values(config: Mapping) -> None:
    """Every bounded number and size of a configuration against its limit; raises LimitError
    naming the first bad key (``config: <key>: ...``)."""
    for key, value in non_finite(config):
        raise LimitError(f"config: {key}: must be a finite number, got {value}")
    for key, limit in SCHEMA_KEYS.items():
        for where, value in config_values(config, key):
            try:
                limit.check(value, where)
            except LimitError as exc:
                raise LimitError(f"config: {exc}") from None
    for key, limit in SIZE_KEYS.items():
        for where, value in config_values(config, key):
            try:
                limit.parse(value, where)
            except LimitError as exc:
                raise LimitError(f"config: {exc}") from None


def _schema_node(schema: Mapping, key: str) -> Mapping | None:
    """The schema of a SCHEMA_KEYS key (``$ref`` followed), None where it has none."""

    def deref(node: Any) -> Any:
        while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
            target: Any = schema
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    node: Any = schema
    for part in key.split("."):
        many = part.endswith("[]")
        node = deref(node).get("properties", {}).get(part.removesuffix("[]"))
        if node is None:
            return None
        if many:
            node = deref(node).get("items")
    return deref(node)


def schema_disagreements(schema: Mapping) -> list[str]:
    """Where the configuration schema's bounds differ from these limits (empty: they agree):
    every SCHEMA_KEYS key, and the folio-size enumeration."""
    out = []
    bounds = ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
    for key, limit in SCHEMA_KEYS.items():
        node = _schema_node(schema, key)
        if node is None:
            out.append(f"{key}: not in the schema")
            continue
        got = {k: node[k] for k in bounds if k in node}
        if got != limit.schema():
            out.append(f"{key}: schema says {got}, limits say {limit.schema()}")
    enum = (schema.get("$defs", {}).get("folio_size") or {}).get("enum")
    if enum != list(FOLIO_SIZE_LABELS):
        out.append(f"$defs.folio_size: schema says {enum}, limits say {list(FOLIO_SIZE_LABELS)}")
    return out
