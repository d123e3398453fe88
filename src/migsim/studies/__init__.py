"""Studies: one module per question the simulator answers, and the registry that lists them.

A study module declares everything about its study (see ``Study``): its section of the
configuration (a JSON-schema fragment, checked against workflow/schemas/config.schema.yaml by
tests/test_studies.py), the Parquet schema of its summary, how it runs (``run(platform,
params) -> DataFrame``, on the engine in ``migsim.kernel`` and ``migsim.cost``), its tables, its
figure and its findings paragraph. The workflow's rules, the what-if page and the index are
generic over the registry.

The published experiments (``throughput``, ``compaction``, and ``alloc_latency`` of the
compaction runs) are one module each too (its run on the engine, Parquet schemas, summary,
tables and figures), with their own job split (one job per throughput row, one simulation
costed for every compaction mode: workflow/rules/{throughput,compaction}.smk); they are
declared in ``EXPERIMENTS`` (``Experiment``), from which the rules aggregate_<name>,
figure_<figure> and tables_<name>, the index cards and ``migsim reproduce`` are generated.
Every other study (the what-if studies ``cluster_max``, ``engine_class``,
``hybrid``, ``fragmentation``, ``latency`` and any plug-in) is one job of rule ``whatif_study``
and is rendered by rule ``whatif_render``; its outputs are ``study_files(results, name)``, its
summary ``study_run(...)``.

Adding a study: write a module that defines ``STUDY = Study(...)`` and name it in the
configuration (``study_modules: [my_package.my_study]``, importable from the Python path of
the workflow) or in the entry-point group ``migsim.studies`` of an installed distribution
(``[project.entry-points."migsim.studies"] my_study = "my_package.my_study"``). Its
configuration section is ``whatif.<name>`` (its schema fragment is merged into the workflow
schema before the configuration is checked).

This module imports nothing heavy: the study modules are imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from migsim.digest import run_file

if TYPE_CHECKING:
    import polars as pl

    from migsim.cost.platform import Platform
    from migsim.output.schema import Schema, Table

# The what-if studies shipped with migsim, in the order of the pages.
BUILTIN = (
    "migsim.studies.cluster_max",
    "migsim.studies.engine_class",
    "migsim.studies.hybrid",
    "migsim.studies.fragmentation",
    "migsim.studies.latency",
)
ENTRY_POINT_GROUP = "migsim.studies"
CONFIG_KEY = "study_modules"  # configuration key: extra study modules by dotted name


@dataclass(frozen=True)
class Study:
    """One study: what it needs from the configuration, what it computes and how it shows it.

    name: file stem of its outputs and key of its configuration section ``whatif.<name>``.
    title: heading of its page and figure. config_schema: JSON schema of its section (the
    ``enabled`` switch included). schema: Parquet schema of its summary. params(config):
    everything its job depends on besides the platform and the code (JSON-serialisable;
    Snakemake reruns the job when it changes). run(platform, params): the summary rows (a
    DataFrame conforming to `schema`). tables(df), figure(df), findings(df): its Markdown /
    HTML tables, its Altair chart and its answer as a paragraph (every number a value of df).
    check(config): checks of its section the JSON schema cannot express (raise ValueError
    naming the key); caption: the text beside its figure in ``snakemake --report``.
    """

    name: str
    title: str
    config_schema: Mapping[str, Any]
    schema: Schema
    params: Callable[[Mapping], dict]
    run: Callable[[Platform, Mapping], pl.DataFrame]
    tables: Callable[[pl.DataFrame], list[Table]]
    figure: Callable[[pl.DataFrame], Any]
    findings: Callable[[pl.DataFrame], str]
    check: Callable[[Mapping], None] | None = None
    caption: str = ""
    module: str = field(default="", compare=False)

    @property
    def section(self) -> str:
        """The configuration key of the study's section."""
        return f"whatif.{self.name}"


@dataclass(frozen=True)
class Experiment:
    """A published experiment (or a view of its runs): declared here, by name, because its
    module drives the engine (NumPy and the kernel model at import), while the Snakefile and
    the command-line parser read these declarations at start-up.

    name: its summary ``summary/<name>.parquet`` and its card on the index. title: the card's
    heading. category: its section of ``snakemake --report``. module: the study module that
    runs it. runs: whose run files its summary aggregates (``runs/<runs>/``; one job per
    throughput row, one for every compaction mode: workflow/rules/<runs>.smk). figures: the
    figures drawn from its summary (``figures/<f>.{html,svg,png}``), each with the name of
    its builder in `module` (summary DataFrame -> Altair chart); tables: its table files
    (``tables/<t>.{md,html}``). reference: the key of the configuration's ``reference``
    section naming the published table its summary is compared with and reproduces (None: it
    reproduces none). rule: the rule that writes its summary, figures and tables when it is
    not the generic ``aggregate_<name>``, ``figure_<f>`` and ``tables_<name>``
    (workflow/rules/{aggregate,figures,tables}.smk). reproduce: the command-line module that
    registers ``migsim reproduce <name>`` (``register_reproduce(rsub)``; None: no command).
    """

    name: str
    title: str
    category: str
    module: str
    runs: str
    figures: Mapping[str, str]
    tables: tuple[str, ...]
    reference: str | None = None
    rule: str | None = None
    reproduce: str | None = None


# The published experiments, in the order of the index (then the what-if studies).
EXPERIMENTS = (
    Experiment(
        name="throughput",
        title="move_pages() throughput (published experiment)",
        category="Throughput",
        module="migsim.studies.throughput",
        runs="throughput",
        figures={
            "throughput": "throughput_chart",
            "speedup": "speedup_heatmap",
            "parity": "parity_chart",
        },
        tables=("throughput", "throughput_vs_published"),
        reference="throughput",
        reproduce="migsim.cli.throughput",
    ),
    Experiment(
        name="compaction",
        title="Direct compaction (published experiment)",
        category="Compaction",
        module="migsim.studies.compaction",
        runs="compaction",
        figures={"compaction": "compaction_chart"},
        tables=("compaction", "compaction_vs_published"),
        reference="compaction",
        reproduce="migsim.cli.compaction",
    ),
    Experiment(
        name="alloc_latency",
        title="Order-9 allocation latency per mode (CDF)",
        category="Compaction",
        module="migsim.studies.kernel_formats",
        runs="compaction",
        figures={"alloc_latency": "alloc_latency_chart"},
        tables=("alloc_latency", "mmtests_compaction"),
        rule="kernel_formats",
    ),
)


def experiments() -> dict[str, Experiment]:
    """The published experiments by name (``EXPERIMENTS``)."""
    return {e.name: e for e in EXPERIMENTS}


def figure_experiments() -> dict[str, Experiment]:
    """Every figure of the published experiments and the experiment it is drawn from."""
    return {f: e for e in EXPERIMENTS for f in e.figures}


def figure_builder(name: str) -> Callable[[pl.DataFrame], Any]:
    """The builder of figure `name` of a published experiment (summary DataFrame -> Altair
    chart), from its experiment's module (imported here: NumPy, the engine)."""
    exp = figure_experiments()[name]
    return getattr(importlib.import_module(exp.module), exp.figures[name])


def schemas() -> dict[str, Schema]:
    """Every Parquet schema of the published experiments' files by name: the run and summary
    files each experiment's module declares (its ``SCHEMAS``, in the order of
    ``EXPERIMENTS``), then the trace events (the trace format's, results/README.md)."""
    from migsim.formats.trace import TRACE_EVENTS

    out: dict[str, Schema] = {}
    for exp in EXPERIMENTS:
        for s in importlib.import_module(exp.module).SCHEMAS:
            out.setdefault(s.name, s)
    out[TRACE_EVENTS.name] = TRACE_EVENTS
    return out


def load_study(module: str) -> Study:
    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        raise ValueError(
            f"config: {CONFIG_KEY}: cannot import study module {module!r}: {err}"
        ) from None
    study = getattr(mod, "STUDY", None)
    if not isinstance(study, Study):
        raise ValueError(
            f"config: {CONFIG_KEY}: module {module!r} defines no STUDY = migsim.studies.Study(...)"
        )
    if not study.module:
        object.__setattr__(study, "module", module)
    return study


def plugin_modules(config: Mapping | None = None) -> list[str]:
    """The study modules besides the built-in ones: the entry points of group
    ``migsim.studies`` of the installed distributions, then the configuration's
    ``study_modules``."""
    mods = list(_entry_point_modules())
    mods += [str(m) for m in (config or {}).get(CONFIG_KEY) or []]
    return [m for m in dict.fromkeys(mods) if m not in BUILTIN]


_ENTRY_POINTS: dict[Any, tuple[str, ...]] = {}


def _entry_point_modules() -> tuple[str, ...]:
    """The modules of the ``migsim.studies`` entry points, read once per process (scanning the
    installed distributions costs about 0.1 s, and the Snakefile asks for the registry about 45
    times); keyed by the entry_points function itself, so that a test patching it is served."""
    from importlib import metadata

    fn = metadata.entry_points
    if fn not in _ENTRY_POINTS:
        _ENTRY_POINTS[fn] = tuple(ep.value for ep in fn(group=ENTRY_POINT_GROUP))
    return _ENTRY_POINTS[fn]


def registry(config: Mapping | None = None) -> dict[str, Study]:
    """Every study by name: the built-in ones, then the plug-ins (see ``plugin_modules``).
    Two studies of one name are an error naming both modules."""
    out: dict[str, Study] = {}
    for module in (*BUILTIN, *plugin_modules(config)):
        study = load_study(module)
        if study.name in out:
            raise ValueError(
                f"config: {CONFIG_KEY}: study {study.name!r} of {module} is already defined by "
                f"{out[study.name].module}"
            )
        out[study.name] = study
    return out


def enabled(config: Mapping) -> list[str]:
    """The studies switched on in the configuration (every study with a section that does not
    say ``enabled: false``; none without a ``whatif`` section)."""
    wi = config.get("whatif") or {}
    if not wi:
        return []
    return [
        name
        for name in registry(config)
        if name in wi and (wi.get(name) or {}).get("enabled", True)
    ]


def config_schema(schema: Mapping, config: Mapping | None = None) -> dict:
    """The workflow schema with the section of every plug-in study merged into ``whatif``
    (the built-in sections are in the file already: tests/test_studies.py)."""
    import copy

    out = copy.deepcopy(dict(schema))
    props = out.get("properties", {}).get("whatif", {}).get("properties")
    if props is None:
        return out
    for name, study in registry(config).items():
        props.setdefault(name, dict(study.config_schema))
    return out


def study_params(config: Mapping, name: str) -> dict[str, Any]:
    """The parameters of study `name`'s job: its section without ``enabled`` plus what its
    module adds (``Study.params``), and the study's seed."""
    from migsim.digest import cell_seed

    studies = registry(config)
    if name not in studies:
        raise ValueError(f"study: must be one of {', '.join(studies)}; got {name!r}")
    return {
        "study": name,
        "module": studies[name].module,
        "seed": cell_seed(int(config["seed"]), "whatif"),
        **studies[name].params(config),
    }


def section(config: Mapping, name: str) -> dict[str, Any]:
    """The study's configuration section without its ``enabled`` switch."""
    sec = dict((config.get("whatif") or {}).get(name) or {})
    sec.pop("enabled", None)
    return sec


def check_config(config: Mapping) -> None:
    """Checks the JSON schema cannot express, for every enabled study (ValueError naming the
    key)."""
    studies = registry(config)
    for name in enabled(config):
        study_params(config, name)  # sizes parse, names are known
        if studies[name].check is not None:
            studies[name].check(config)


def study_files(results: str, name: str, summary: str | None = None) -> dict[str, str]:
    """Output paths of one study under `results`/whatif: figure (html, svg, png), table (md,
    table_html), findings paragraph (findings) and the study's own page (page: figure, table
    and findings once); and its summary (parquet) when `summary` gives its path
    (``study_run``: named by a digest, so it is no fixed path)."""
    d = f"{results}/whatif"
    files = {} if summary is None else {"parquet": str(summary)}
    return files | {
        "html": f"{d}/{name}.html",
        "svg": f"{d}/{name}.svg",
        "png": f"{d}/{name}.png",
        "md": f"{d}/{name}_table.md",
        "table_html": f"{d}/{name}_table.html",
        "findings": f"{d}/{name}_findings.md",
        "page": f"{d}/{name}_page.html",
    }


def study_run(results: str, name: str, params: Mapping, code_digest: str) -> str:
    """The summary Parquet of one study job, ``<results>/runs/whatif/<name>/<digest>.parquet``:
    named by the digest of its parameters (``study_params``) and of its code and the platform
    (`code_digest`, ``migsim.pipeline.files_digest``), like every simulation output, so a
    rerun with a changed value writes a new file and a failing one leaves the previous in
    place (``snakemake prune`` removes what the configuration no longer uses)."""
    return run_file(results, "whatif", name, params, code_digest)


def summary_study(path: str) -> str | None:
    """The study whose summary `path` is (``study_run``'s layout), or None."""
    from pathlib import Path

    p = Path(path)
    ok = p.suffix == ".parquet" and p.parent.parent.name == "whatif"
    return p.parent.name if ok and p.parent.parent.parent.name == "runs" else None


def run_study(platform_path: str, params: Mapping, out_path: str) -> None:
    """Run one study job (``study_params``) and write its summary Parquet (schema, metadata,
    atomic)."""
    from migsim.cost.platform import load_platform
    from migsim.digest import config_hash
    from migsim.output.tables import write_parquet

    name = params["study"]
    study = load_study(params["module"])
    platform = load_platform(platform_path)
    df = study.run(platform, params)
    write_parquet(
        df,
        out_path,
        study.schema,
        config_hash=config_hash(dict(params)),
        seed=params["seed"],
        extra={"platform_digest": platform.digest(), "study": name},
    )
