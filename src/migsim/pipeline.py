"""What the Snakemake workflow calls: configuration checks, the job matrix, per-job seeds and
one function per job (simulate one row of the throughput table, one compaction mode, aggregate,
draw, tabulate). The workflow's scripts only translate ``snakemake.input/params/output`` into
one call of a function here, so every job also runs from Python or a test.

Job granularity: one throughput job per row of the published table (mode x channel count, or
x thread count), with its folio sizes and trials inside, so that adding a channel count adds
one job and leaves the others alone; one compaction job per mode, with its runs inside.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migsim import __version__
from migsim.digest import (  # noqa: F401 (mp.cell_seed, mp.config_hash, mp.run_file, ...)
    cell_seed,
    config_hash,
    output_digest,
    run_file,
    state_file,
)
from migsim.units import PAGE_SIZE, PAGEBLOCK_NR_PAGES, format_size, parse_size

if TYPE_CHECKING:  # the engine is imported inside the job functions, not by the Snakefile
    import ast

    from migsim.cost.platform import Platform
    from migsim.output.tables import Schema

PAGEBLOCK_BYTES = PAGEBLOCK_NR_PAGES * PAGE_SIZE  # 2 MiB: one order-9 allocation

# Entry modules of each simulation job: their migsim imports are followed to list the source
# files a job depends on (see engine_sources).
ENGINE_ROOTS = {
    "fragment": ("kernel.fragment", "cost.platform"),
    "throughput": ("studies.throughput", "output.tables"),
    "compaction": ("studies.compaction", "kernel.fragment", "output.tables"),
}

FIGURES = ("throughput", "speedup", "parity", "compaction")
FIGURE_FORMATS = ("html", "svg", "png")

_ROW_RE = re.compile(r"^(?:(baseline)|(dma)-(\d+)ch|(mt)-(\d+)t)$")


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key."""


def _package_sources(root: Path) -> list[Path]:
    """Every source file of the package at `root`: its Python modules and the C source of its
    extension (kernel/_compact.c, which setup.py compiles)."""
    return [*root.rglob("*.py"), *root.rglob("*.c")]


def engine_digest() -> str:
    """Short hash of the engine's code: every Python and C source file of the installed migsim
    package (path and content; the C file is the compiled allocation loop, kernel/_compact.c),
    so that results record which engine computed them."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(_package_sources(root)):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def explain_validation_error(err: BaseException) -> str:
    """One line naming the config key of a jsonschema ValidationError (or the error text)."""
    path = list(getattr(err, "absolute_path", []) or [])
    message = getattr(err, "message", str(err))
    validator = getattr(err, "validator", None)
    if validator == "required":
        m = re.match(r"'([^']+)' is a required property", message)
        if m:
            path.append(m.group(1))
            message = "missing required key"
    elif validator == "additionalProperties":
        extra = re.findall(r"'([^']+)'", message)
        if extra:
            path.append(extra[0])
        allowed = ", ".join(sorted(getattr(err, "schema", {}).get("properties", {})))
        message = f"unknown key; allowed keys here: {allowed}"
    elif validator in ("enum", "oneOf", "pattern", "type"):
        about = getattr(err, "schema", {}).get("description")
        if about:
            message += f" ({about})"
    key = _format_key(path) or "(top level)"
    return f"config: {key}: {message}"


def coerce_config(config: Any, schema: Mapping, root: Mapping | None = None) -> Any:
    """A copy of `config` where strings stand for numbers the schema asks for converted to
    them: ``snakemake --config 'throughput={channels: [1, 2]}'`` reads nested values as
    strings (YAML base loader). Anything else is left for the schema to judge."""
    root = schema if root is None else root
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        return coerce_config(config, target, root)
    kind = schema.get("type")
    if isinstance(config, str):
        text = config.strip()
        if kind == "integer" and re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        if kind == "number" and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
            return float(text)
        if kind == "boolean" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        return config
    if isinstance(config, Mapping):
        props = schema.get("properties", {})
        return {k: coerce_config(v, props[k], root) if k in props else v for k, v in config.items()}
    if isinstance(config, list) and isinstance(schema.get("items"), Mapping):
        return [coerce_config(v, schema["items"], root) for v in config]
    return config


def _format_key(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def check_config(config: Mapping) -> None:
    """Checks the JSON schema cannot express; raises ConfigError naming the key."""
    tp = config["throughput"]
    total = parse_size(tp["total_bytes"], name="throughput.total_bytes")
    for i, fs in enumerate(tp["folio_sizes"]):
        fb = parse_size(fs, name=f"throughput.folio_sizes[{i}]")
        if total % fb:
            raise ConfigError(
                f"config: throughput.total_bytes: {tp['total_bytes']} is not a multiple of "
                f"folio size {fs}"
            )
    fr = config["fragmentation"]
    node = parse_size(fr["node_bytes"], name="fragmentation.node_bytes")
    if node % PAGEBLOCK_BYTES or node < 2 * PAGEBLOCK_BYTES:
        raise ConfigError(
            f"config: fragmentation.node_bytes: must be a whole number of 2M pageblocks, at "
            f"least 4M; got {fr['node_bytes']}"
        )
    need = config["compaction"]["allocations"] * PAGEBLOCK_BYTES
    if need >= node:
        raise ConfigError(
            f"config: compaction.allocations: {config['compaction']['allocations']} order-9 "
            f"allocations need {format_size(need)}, more than the node "
            f"(fragmentation.node_bytes = {fr['node_bytes']})"
        )


def check_against_platform(config: Mapping, platform_path: str) -> None:
    """Checks that need the platform file (which must exist and be valid): every channel and
    thread count of the configuration within what the platform has. Raises ValueError
    naming the key."""
    from migsim.cost.platform import load_platform
    from migsim.limits import (
        CHANNEL_KEYS,
        CHANNELS,
        THREAD_KEYS,
        THREADS,
        LimitError,
        config_values,
    )

    platform = load_platform(platform_path)
    checks = [(k, CHANNELS, platform.dma.max_channels_count, "DMA channels") for k in CHANNEL_KEYS]
    checks += [(k, THREADS, platform.mt.max_threads_count, "copy threads") for k in THREAD_KEYS]
    for key, limit, top, what in checks:
        for where, value in config_values(config, key):
            try:
                limit.check(value, where, hi=top, why=f"the {what} of platform {platform.name}")
            except LimitError as exc:
                raise ConfigError(f"config: {exc}") from None


def load_schema(path: str | os.PathLike) -> dict:
    """The workflow's configuration schema (YAML), read with libyaml's safe loader where PyYAML
    has it (as cost.platform reads the platform file): the same document as yaml.safe_load,
    in 5 instead of 29 ms, which every snakemake invocation pays when it parses the workflow."""
    import yaml

    with open(path) as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def validate_config(
    config: Mapping, schema: Mapping, basedir: str | os.PathLike | None = None
) -> None:
    """Every check of a configuration, before any job (what the workflow runs at start, and
    what tests call in-process): no NaN or infinity anywhere, the JSON schema, the ranges of
    migsim.limits, the checks the schema cannot express and, with `basedir` (where relative
    paths are resolved), the platform file and the counts it narrows. Raises ConfigError
    with one line naming the key."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    from migsim import studies
    from migsim.limits import check_config_values, non_finite

    for key, value in non_finite(config):
        raise ConfigError(f"config: {key}: must be a finite number, got {value}")
    try:  # the sections of the plug-in studies (the built-in ones are in the file)
        schema = studies.config_schema(schema, config)
    except ValueError as exc:
        raise ConfigError(" ".join(str(exc).split())) from None
    err = best_match(Draft202012Validator(schema).iter_errors(config))
    if err is not None:
        raise ConfigError(explain_validation_error(err))
    try:
        check_config_values(config)
        check_config(config)
        studies.check_config(config)
        if basedir is not None:
            for kind, path in config["reference"].items():
                if not Path(resolve_path(path, basedir)).is_file():
                    raise ConfigError(f"config: reference.{kind}: no such file {path}")
            check_against_platform(config, resolve_path(config["platform"], basedir))
    except ConfigError:
        raise
    except ValueError as exc:  # a size that does not parse, the platform file
        line = " ".join(str(exc).split())
        raise ConfigError(line if line.startswith("config: ") else f"config: {line}") from None


def resolve_path(path: str | os.PathLike, basedir: str | os.PathLike) -> str:
    """A configured file path: as given if it exists relative to the working directory,
    else relative to the workflow's directory (so ``--directory`` runs find the repo's files)."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return str(p)
    alt = Path(basedir) / p
    return str(alt) if alt.exists() else str(p)


def engine_sources(*roots: str) -> list[str]:
    """The migsim source files a simulation job depends on (Snakemake does not track imported
    packages): the modules `roots` (dotted names below migsim, e.g. ``studies.throughput``)
    and every migsim module they import, directly or not, plus this module (the job functions)
    and migsim.jobs (the jobs' entry point),
    but not the presentation modules (``STUDY_PRESENTATION``: a study module imports them
    inside its figure builders; editing them redraws figures, it reruns no simulation).
    Modules that do not exist (yet) are skipped."""
    pkg = Path(__file__).resolve().parent
    seen: set[Path] = set()
    skip = {pkg / p for p in STUDY_PRESENTATION}
    todo = [_module_file(pkg, r) for r in roots]
    while todo:
        f = todo.pop()
        if f is None or f in seen or f in skip or not f.is_file():
            continue
        seen.add(f)
        if f.suffix == ".py":  # an extension's C source is a dependency with no imports to follow
            todo += [_module_file(pkg, m) for m in _imported_modules(pkg, f)]
    seen.add(Path(__file__).resolve())
    seen.add(pkg / "jobs.py")  # the shell jobs' entry point (migsim.jobs)
    return sorted(str(f) for f in seen)


def all_engine_sources() -> list[str]:
    """Every migsim module except the presentation ones (the figures and pages of output/, the
    CLI): the conservative dependency list for a rule that does not name its entry modules."""
    pkg = Path(__file__).resolve().parent
    skip = ("output/figures", "output/pages", "output/study_pages", "output/html", "cli")
    return sorted(
        str(f) for f in _package_sources(pkg) if not f.relative_to(pkg).as_posix().startswith(skip)
    )


def _module_file(pkg: Path, dotted: str) -> Path | None:
    base = pkg.joinpath(*dotted.split(".")) if dotted else pkg
    # an extension module (kernel._compact) depends on its C source, which setup.py compiles
    for cand in (base.with_suffix(".py"), base / "__init__.py", base.with_suffix(".c")):
        if cand.is_file():
            return cand
    return None


def _imported_modules(pkg: Path, path: Path) -> list[str]:
    """Dotted names (relative to the migsim package) of what `path` imports from migsim; for
    ``from X import name`` both X and X.name (which may be a module) are listed. Parsed once
    per process and file version: the Snakefile asks for the same modules' imports once per
    rule (about 190 parses, half the CPU time of a dry run, before this memo)."""
    st = path.stat()
    return list(_imports_of(str(pkg), str(path), st.st_mtime_ns, st.st_size))


def _statements(tree: ast.AST) -> Iterator[ast.stmt]:
    """Every statement of `tree`, nested ones included (an import is a statement: the
    expressions, most of a module's nodes, need no visit; half the time of ast.walk)."""
    import ast

    todo = [tree]
    while todo:
        node = todo.pop()
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            for child in getattr(node, name, ()):
                if isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)):
                    todo.append(child)
                    if isinstance(child, ast.stmt):
                        yield child


# A line that starts an import statement. An import statement after a colon or a semicolon on
# the line of another statement (an `if` and its import on one line) anywhere in a file sends
# the whole file to ast.parse instead.
_IMPORT_LINE = re.compile(r"^[ \t]*(?:import|from)[ \t]", re.M)
_IMPORT_AFTER = re.compile(
    r"[:;][ \t]*(?:import[ \t]+[\w.]+[ \t]*(?:$|[,#;]|as\b)|from[ \t]+[\w.]+[ \t]+import\b)", re.M
)


def _import_nodes(text: str, filename: str) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of a module's source `text`, nested ones included. Only the lines
    that start one are parsed (with their continuation lines: open parentheses, a trailing
    backslash), not the whole module (a tenth of the time: the Snakefile lists the imports of
    about 50 modules before any job starts). A docstring line that reads as an import (say,
    "from the kernel ...") does not parse and is skipped; one that does parse counts as a
    dependency, one more rerun trigger, never a missed one."""
    import ast

    if _IMPORT_AFTER.search(text):
        tree = ast.parse(text, filename=filename)
        return [n for n in _statements(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    lines = text.splitlines()
    nodes = []
    for m in _IMPORT_LINE.finditer(text):
        i = text.count("\n", 0, m.start())
        stmt = [lines[i].lstrip()]
        depth = stmt[0].count("(") - stmt[0].count(")")
        while (depth > 0 or stmt[-1].rstrip().endswith("\\")) and i + 1 < len(lines):
            i += 1
            stmt.append(lines[i])
            depth += lines[i].count("(") - lines[i].count(")")
        try:
            tree = ast.parse("\n".join(stmt), filename=filename)
        except SyntaxError:  # text of a docstring or a comment
            continue
        nodes += [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    return nodes


@functools.cache
def _imports_of(pkg_dir: str, file: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    """_imported_modules of one version (mtime, size) of `file`."""
    import ast

    pkg, path = Path(pkg_dir), Path(file)
    package = list(path.parent.relative_to(pkg).parts)  # the module's own package
    out = []
    for node in _import_nodes(path.read_text(), str(path)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "migsim":
                mod = node.module.split(".")[1:]
            else:
                continue
            out.append(".".join(mod))
            out += [".".join([*mod, a.name]) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [
                ".".join(a.name.split(".")[1:])
                for a in node.names
                if a.name.split(".")[0] == "migsim"
            ]
    return tuple(out)


# Presentation modules a study module imports for its figure and page: editing them redraws
# the figures but does not rerun the study's simulation.
STUDY_PRESENTATION = ("output/figures.py", "output/study_pages.py")


def study_sources(config: Mapping | None, name: str) -> list[str]:
    """The source files study `name`'s job depends on (Snakemake does not track imported
    packages): its module (a plug-in's file too) and every migsim module it imports, directly
    or not, except the presentation modules (``STUDY_PRESENTATION``)."""
    import ast
    import sys

    from migsim.studies import registry

    module = registry(config)[name].module
    path = Path(sys.modules[module].__file__).resolve()
    pkg = Path(__file__).resolve().parent
    if path.is_relative_to(pkg):
        files = engine_sources(".".join(path.relative_to(pkg).with_suffix("").parts))
    else:  # a plug-in: its file and the migsim modules it imports (absolute imports)
        roots = []
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("migsim."):
                mod = node.module.split(".", 1)[1]
                roots += [mod, *(f"{mod}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                roots += [a.name[7:] for a in node.names if a.name.startswith("migsim.")]
        files = [str(path), *engine_sources(*roots)]
    skip = {str(pkg / p) for p in STUDY_PRESENTATION}
    return sorted(set(files) - skip)


def module_source(name: str) -> str:
    """Path of one migsim module, by its dotted name below migsim (``figures``,
    ``host.pipeline``, ``formats.mmtests``)."""
    path = _module_file(Path(__file__).resolve().parent, name)
    if path is None:
        raise ValueError(f"no migsim module {name!r}")
    return str(path)


def experiment_digest(config: Mapping, kind: str) -> str:
    """Configuration hash of one experiment's summary: the parameters of all its jobs and the
    published table it is compared with (goes into the summary Parquet's metadata)."""
    if kind == "throughput":
        jobs = [throughput_params(config, row) for row in throughput_rows(config)]
    elif kind == "compaction":
        jobs = [compaction_params(config, mode) for mode in config["compaction"]["modes"]]
    else:
        raise ValueError(f"kind: must be throughput or compaction, got {kind!r}")
    return config_hash({"jobs": jobs, "reference": config["reference"][kind]})


@contextlib.contextmanager
def job_log(path: str | os.PathLike, what: str, params: Any = None) -> Iterator[None]:
    """Send a job's stdout and stderr to its log file, headed by what it does and its params."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        print(f"migsim {__version__}: {what}")
        if params is not None:
            print("params:", json.dumps(params, sort_keys=True, default=str))
        try:
            yield
        except BaseException:  # the traceback in the job's log too (Snakemake prints it again)
            import traceback

            traceback.print_exc(file=fh)
            print("failed")
            raise
        print("done")


# ---------------------------------------------------------------------------------------------
# Run files kept across reruns
# ---------------------------------------------------------------------------------------------
#
# Snakemake deletes a job's outputs before it runs the job, so a rerun that fails would leave
# neither the old result nor a new one. Every simulation output is therefore named by the
# digest of all it depends on (its parameters, the engine source files it imports and the
# platform file): a changed value, engine or platform writes a new file beside the old one,
# and the old stays readable (and results/index.html, which lists the files it was built
# from, keeps pointing at it) until the rerun succeeds and `snakemake prune` removes what the
# current configuration no longer uses.


def files_digest(paths: Sequence[str | os.PathLike]) -> str:
    """Short hash of the contents of `paths` (order does not matter)."""
    h = hashlib.sha256()
    for p in sorted(str(p) for p in paths):
        h.update(Path(p).name.encode() + b"\0" + Path(p).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def prune_results(results: str | os.PathLike, keep: Sequence[str | os.PathLike]) -> list[str]:
    """Delete the run files and states under `results` that are not in `keep` (the current
    configuration's), with their logs; returns what was removed, relative to `results`."""
    results = Path(results)
    keep_set = {Path(k).resolve() for k in keep}
    removed = []
    stale = [f for f in sorted(results.glob("runs/*/*/*.parquet")) if f.resolve() not in keep_set]
    states = sorted(results.glob("state/*/fragmentation.npz"))
    stale += [f for f in states if f.resolve() not in keep_set]
    for f in stale:
        rel = f.relative_to(results)
        f.unlink()
        if rel.parts[0] == "runs":  # runs/<kind>/<key>/<d>.parquet: logs/<kind>/<key>/<d>.log
            kind, key, digest = rel.parts[1], rel.parts[2], f.stem
            (results / "logs" / kind / key / f"{digest}.log").unlink(missing_ok=True)
            bench = results / "logs" / "benchmarks" / kind / key / f"{digest}.tsv"
            bench.unlink(missing_ok=True)
        removed.append(str(rel))
    dirs = [*results.glob("runs/*/*"), *results.glob("state/*"), *results.glob("logs/**/")]
    for d in sorted(dirs, key=lambda d: len(d.parts), reverse=True):
        if d.is_dir() and d != results / "logs" and not any(d.iterdir()):
            d.rmdir()
    return removed


# ---------------------------------------------------------------------------------------------
# Job matrix
# ---------------------------------------------------------------------------------------------


def throughput_rows(config: Mapping) -> list[str]:
    """Job names of the throughput rows: ``baseline``, ``dma-<N>ch``, ``mt-<N>t``."""
    tp = config["throughput"]
    rows = []
    for mode in tp["modes"]:
        if mode == "baseline":
            rows.append("baseline")
        elif mode == "dma":
            rows += [f"dma-{c}ch" for c in sorted(tp["channels"])]
        elif mode == "mt":
            rows += [f"mt-{t}t" for t in sorted(tp["threads"])]
    return rows


def parse_row(row: str) -> tuple[str, int | None, int | None]:
    """``dma-4ch`` -> ("dma", 4, None); ``mt-8t`` -> ("mt", None, 8); ``baseline``."""
    m = _ROW_RE.match(row)
    if not m:
        raise ValueError(f"row: not a throughput row name: {row!r}")
    if m.group(1):
        return "baseline", None, None
    if m.group(2):
        return "dma", int(m.group(3)), None
    return "mt", None, int(m.group(5))


def throughput_params(config: Mapping, row: str) -> dict[str, Any]:
    """Everything one throughput row job depends on besides the platform file and the code."""
    mode, channels, threads = parse_row(row)
    tp = config["throughput"]
    return {
        "mode": mode,
        "channels": channels,
        "threads": threads,
        "folio_sizes": [format_size(parse_size(s)) for s in tp["folio_sizes"]],
        "trials": int(tp["trials"]),
        "total_bytes": parse_size(tp["total_bytes"], name="throughput.total_bytes"),
        "batch_limit": int(tp["batch_limit"]),
        "fail_rate": float(tp["fail_rate"]),
        "min_batch_bytes": int(tp["min_batch_bytes"]),
        "rfc": str(config.get("rfc", "v4")),
        "seed": int(config["seed"]),
    }


def fragmentation_params(config: Mapping) -> dict[str, Any]:
    """Everything the fragmented node depends on."""
    fr = config["fragmentation"]
    return {
        "node_bytes": parse_size(fr["node_bytes"], name="fragmentation.node_bytes"),
        "free_ratio": float(fr["free_ratio"]),
        "pattern": str(fr["pattern"]),
        "seed": cell_seed(int(config["seed"]), "fragmentation"),
    }


def compaction_params(config: Mapping, mode: str) -> dict[str, Any]:
    """Everything one compaction mode job depends on besides the state file and the code."""
    cp = config["compaction"]
    return {
        "mode": mode,
        "channels": int(cp["channels"]),
        "cluster_max": int(cp["cluster_max"]),
        "allocations": int(cp["allocations"]),
        "runs": int(cp["runs"]),
        "noise": bool(cp["noise"]),
        "fail_rate": float(cp["fail_rate"]),
        "min_batch_bytes": int(cp["min_batch_bytes"]),
        "rfc": str(config.get("rfc", "v4")),
        "seed": int(config["seed"]),
        **{k: v for k, v in fragmentation_params(config).items() if k != "seed"},
    }


# ---------------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------------


def _write_runs(
    rows: list[dict], schema: Schema, out_path: str, params: Mapping, platform: Platform
) -> None:
    """One simulation job's rows as its Parquet file, with the job's parameter hash, its seed
    and the digest of the platform it ran on in the metadata (written without Polars)."""
    from migsim.output.arrow import write_rows

    write_rows(
        rows,
        out_path,
        schema,
        config_hash=config_hash(dict(params)),
        seed=params["seed"],
        extra={"platform_digest": platform.digest(), "engine_digest": engine_digest()},
    )


def simulate_throughput_row(platform_path: str, params: Mapping, out_path: str) -> None:
    """One throughput row: every folio size, `trials` trials each, into one Parquet file."""
    from migsim.calibrate.intervals import result_interval
    from migsim.cost.platform import load_platform
    from migsim.studies.throughput import THROUGHPUT_RUNS, run_throughput

    platform = load_platform(platform_path)
    rows: list[dict] = []
    for label in params["folio_sizes"]:
        folio_bytes = parse_size(label)
        seed = cell_seed(
            params["seed"],
            "throughput",
            params["mode"],
            params["channels"],
            params["threads"],
            folio_bytes,
        )
        result = run_throughput(
            platform,
            mode=params["mode"],
            folio_size=folio_bytes,
            channels=params["channels"],
            threads=params["threads"],
            total_bytes=params["total_bytes"],
            batch_limit=params["batch_limit"],
            trials=params["trials"],
            seed=seed,
            fail_rate=params["fail_rate"],
            min_batch_bytes=params["min_batch_bytes"],
            rfc=params.get("rfc", "v4"),
        )
        iv = result_interval(platform, result)
        result.lo_gbps, result.hi_gbps = iv.lo, iv.hi
        rows += result.rows()
    _write_runs(rows, THROUGHPUT_RUNS, out_path, params, platform)


def fragment_node(platform_path: str, params: Mapping, out_path: str) -> None:
    """The pipeline's first stage: build the fragmented node and save its state (.npz). The
    platform gives the node's CPU count (per-CPU page list sizes), as in run_compaction."""
    from migsim.cost.platform import load_platform
    from migsim.kernel import fragment

    platform = load_platform(platform_path)
    config = fragment.FragmentConfig(
        node_bytes=params["node_bytes"],
        free_ratio=params["free_ratio"],
        pattern=params["pattern"],
        seed=params["seed"],
    )
    zone = fragment.fragment(config, node_cpus=platform.compaction.node_cpus_count)
    fragment.save_state(zone, out_path, config)
    print("fragmentation:", json.dumps(fragment.metrics(zone), sort_keys=True, default=str))


# the parameters of a compaction job that change its page-level run (which pages move, in which
# migrate_pages() calls); the rest (mode, channels, fail_rate, min_batch_bytes, noise, the seed
# of a run from a saved state) only change its cost
COMPACTION_CONTROL_FLOW = ("cluster_max", "node_bytes", "allocations", "free_ratio", "pattern")


def simulate_from_state(platform, params: Mapping, state_path: str, *, trace: bool = False):
    """The page-level run of a compaction job's control-flow parameters from the saved state
    (`trace`: with every tracepoint event marked)."""
    from migsim.studies.compaction import simulate

    flow = {k: params[k] for k in COMPACTION_CONTROL_FLOW}
    return simulate(platform, **flow, seed=params["seed"], state=state_path, trace=trace)


def simulations_by_control_flow(
    platform, state_path: str, jobs: Sequence[Mapping], *, trace: bool = False
) -> Iterator[tuple[Mapping, Any]]:
    """Each of `jobs` with the page-level run of its control-flow parameters from the saved
    state, simulated once per distinct COMPACTION_CONTROL_FLOW key and shared by every job
    with that key (`trace` as for simulate_from_state)."""
    sims: dict[tuple, Any] = {}
    for params in jobs:
        key = tuple(params[k] for k in COMPACTION_CONTROL_FLOW)
        if key not in sims:
            sims[key] = simulate_from_state(platform, params, state_path, trace=trace)
        yield params, sims[key]


def cost_mode_run(sim, platform, params: Mapping, run: int):
    """Run number `run` of one compaction mode job, costed from the page-level run `sim`."""
    return sim.result(
        platform,
        mode=params["mode"],
        channels=params["channels"],
        fail_rate=params["fail_rate"],
        min_batch_bytes=params["min_batch_bytes"],
        noise=params["noise"],
        rfc=params.get("rfc", "v4"),
        seed=cell_seed(params["seed"], "compaction", params["mode"], run),
    )


def simulate_compaction_modes(
    platform_path: str, state_path: str, jobs: Sequence[Mapping], out_paths: Sequence[str]
) -> None:
    """Every compaction mode from one saved state, `runs` runs each, each mode into its own
    Parquet file: the page-level run is simulated once per distinct COMPACTION_CONTROL_FLOW key
    and costed for every mode and run that shares it (the rows are those of a run_compaction()
    per mode and run from the state: tests/test_one_simulation.py)."""
    from migsim.cost.platform import load_platform
    from migsim.studies.compaction import COMPACTION_RUNS

    platform = load_platform(platform_path)
    shared = simulations_by_control_flow(platform, state_path, jobs)
    for (params, sim), out_path in zip(shared, out_paths, strict=True):
        rows = [cost_mode_run(sim, platform, params, run).row() for run in range(params["runs"])]
        _write_runs(rows, COMPACTION_RUNS, out_path, params, platform)


def aggregate(
    kind: str,
    run_paths: Sequence[str],
    reference_path: str,
    out_path: str,
    *,
    digest: str,
    seed: int,
) -> None:
    """Aggregate the run files of one experiment (throughput or compaction) with its published
    table into its summary Parquet."""
    from migsim.output import tables as t
    from migsim.studies import compaction, throughput

    runs_schema, summary_schema, load_reference, summarise = {
        "throughput": (
            throughput.THROUGHPUT_RUNS,
            throughput.THROUGHPUT_SUMMARY,
            throughput.load_reference_throughput,
            throughput.summarise_throughput,
        ),
        "compaction": (
            compaction.COMPACTION_RUNS,
            compaction.COMPACTION_SUMMARY,
            compaction.load_reference_compaction,
            compaction.summarise_compaction,
        ),
    }[kind]
    runs = t.read_runs(run_paths, runs_schema)
    # the inputs the runs were computed from (platform values, engine code), so that a reader
    # can tell stale results (more than one engine digest: some run files are older)
    inputs = {
        key: ",".join(sorted({t.read_metadata(p).get(key, "") for p in run_paths}))
        for key in ("platform_digest", "engine_digest")
    }
    summary = summarise(runs, load_reference(reference_path))
    t.write_parquet(summary, out_path, summary_schema, config_hash=digest, seed=seed, extra=inputs)


def write_tables(kind: str, summary_path: str, outputs: Mapping[str, str]) -> None:
    """Markdown + HTML tables of one experiment (`kind` = throughput or compaction): the
    simulated table and the one with the published value and the error beside each cell.
    `outputs` has keys md, html, vs_md, vs_html."""
    import polars as pl

    from migsim.output import tables
    from migsim.studies import compaction, throughput

    summary = pl.read_parquet(summary_path)
    build = {"throughput": throughput.throughput_table, "compaction": compaction.compaction_table}[
        kind
    ]
    tables.write_table(build(summary), outputs["md"], outputs["html"])
    versus = [build(summary, with_published=True)]
    if kind == "compaction":
        versus.append(compaction.compaction_per_page_table(summary))
    tables.write_table(versus, outputs["vs_md"], outputs["vs_html"])


def draw_figures(
    summary_path: str,
    stems: Mapping[str, str],
    bundle: str | None = None,
    answer_svg: str | None = None,
) -> None:
    """Figures of one published experiment (throughput, speedup, parity, compaction: each
    builder is named by the experiment's declaration, ``migsim.studies.EXPERIMENTS``) from its
    summary, each as HTML, SVG and PNG: `stems` maps a figure's name to its path without
    suffix. One process draws them all, so the renderer starts once. `bundle`: the prebuilt
    script the HTML inlines, see figures.write_javascript_bundle; `answer_svg`: where to draw
    the figure of results/index.html's answer too (from the throughput summary)."""
    import polars as pl

    from migsim.output import figures
    from migsim.studies import figure_builder

    summary = pl.read_parquet(summary_path)
    # Vega's SVG renderer numbers gradients per process (gradient_0, gradient_1, ...): a
    # figure's ids follow those of the figures drawn before it in the job. Of the published
    # figures only the speedup heatmap has one, so each file is what a process of its own
    # writes.
    for name, stem in stems.items():
        figures.save_chart(figure_builder(name)(summary), stem, bundle=bundle)
    if answer_svg:  # no gradient in it: the bytes of a process of its own (see above)
        from migsim.output.front import answer_figure_svg

        answer_figure_svg(summary_path, answer_svg)


def write_index(
    out_path: str,
    *,
    figures: Sequence[str],
    tables: Sequence[str],
    summaries: Sequence[str],
    config: Mapping,
    whatif: Sequence[str] = (),
    runs: Sequence[str] = (),
    series: Sequence[str] = (),
    answer_svg: str | None = None,
    answer_from: str | None = None,
) -> None:
    """results/index.html, readable offline: the answer first, then the studies (what-if
    ones when `whatif` lists their output files, the series page from `series`), the
    reproduction tables, the run files it was built from and the configuration; the
    answer's figure to `answer_svg`, or read from `answer_from` (drawn by draw_figures)."""
    from migsim.output import pages

    pages.write_index(
        out_path,
        figures=figures,
        tables=tables,
        summaries=summaries,
        config=config,
        whatif=whatif,
        runs=runs,
        series=series,
        answer_svg=answer_svg,
        answer_from=answer_from,
    )
