# Shared helpers of the migsim workflow: configuration check, paths and the job matrix.
# All logic lives in migsim.pipeline; this file only binds it to Snakemake.
import os
import shlex
import sys

import migsim.jobs as mj
import migsim.pipeline as mp
import migsim.studies as ms
from snakemake.exceptions import WorkflowError

# Check the configuration before any job: one line naming the key and the allowed values
# (migsim.pipeline.validate_config: NaN and infinities, the schema, migsim.limits, the
# platform's channel and thread counts). Numbers given as nested --config values arrive as
# strings: convert them first.
SCHEMA = mp.load_schema(
    os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")
)
config.update(mp.coerce_config(config, SCHEMA))
try:
    mp.validate_config(config, SCHEMA, workflow.basedir)
except ValueError as err:
    raise WorkflowError(str(err)) from None
RESULTS = "results"
# The interpreter of the shell jobs that run migsim (migsim_job): the one running Snakemake (a
# `script:` job's too; a `python` on PATH may be a version manager's shim, 0.1 CPU s a start),
# or the rule's environment's with --software-deployment-method conda.
PYTHON = (
    "python"
    if "conda"
    in {str(m).lower() for m in workflow.deployment_settings.deployment_method}
    else shlex.quote(sys.executable)
)


def migsim_job(verb):
    """The shell command of a job that runs the job `verb` of migsim.jobs (its JOBS) with the
    rule's params.job (job_params) and log: a shell job imports migsim alone, a `script:`
    job's interpreter Snakemake too (about 0.08 CPU s a job)."""
    return f"{PYTHON} -m migsim.jobs {verb} {{params.job:q}} {{log:q}}"


def job_params(**params):
    """params.job of a migsim_job rule: the job's named inputs and outputs, its wildcards and
    `params` as one JSON argument (migsim.jobs.job_spec); a value that is a function is
    called with the job's wildcards."""

    def job(wildcards, input, output):
        values = {k: v(wildcards) if callable(v) else v for k, v in params.items()}
        return mj.job_spec(
            dict(input.items()), dict(output.items()), values, dict(wildcards.items())
        )

    return job


# Job priorities (Snakemake starts the ready job of highest priority first): about the longest
# path, in seconds, from a job of the rule to the end of the default pipeline (its own time and
# its slowest chain of dependent jobs, measured on the 2-core machine at 7ee9c1e), so that the
# long chains start first and the last jobs to finish are short: the what-if studies (the
# longest jobs, then their page), the fragment -> compaction chain and the Vega bundle every
# figure needs, then the throughput rows before the figures, which would otherwise take their
# place (Snakemake breaks equal priorities by input size, and the figure jobs read the 1 MB
# bundle); the tables and the index last. A list schedule of those job times on 2 cores ends
# 1.4 s earlier than with priorities on the studies and fragment -> compaction alone (22.8
# against 24.2 s), and within 0.3 s of its bound with the studies and compaction 40-60%
# faster (the compiled allocation loop).
PRIORITY = {
    "whatif_study": 12,
    "fragment": 9,
    "compaction": 8,
    "vega_bundle": 8,
    "throughput": 6,
    "aggregate_compaction": 5,
    "aggregate_throughput": 5,
    "figures_compaction": 5,
    "whatif_render": 5,
    "figures_throughput": 4,
    "kernel_formats": 3,
    "series_page": 3,
    "tables_compaction": 2,
    "tables_throughput": 2,
    "index": 1,
}


PLATFORM = mp.resolve_path(config["platform"], workflow.basedir)
REFERENCE = {
    kind: mp.resolve_path(path, workflow.basedir)
    for kind, path in config["reference"].items()
}
# Snakemake does not track imported packages: each simulation depends on the migsim source
# files it imports (found by following the imports of its entry modules) and reruns when one
# changes; editing a figure or the report does not rerun simulations.
ENGINE_FOR = {
    stage: mp.engine_sources(*roots) for stage, roots in mp.ENGINE_ROOTS.items()
}
# The digest that names each simulation output: the contents of the engine files the stage
# imports and of the platform file (with the job's parameters, migsim.pipeline.run_file).
CODE_DIGEST = {
    stage: mp.files_digest([*files, PLATFORM]) for stage, files in ENGINE_FOR.items()
}
STATE = mp.state_file(RESULTS, mp.fragmentation_params(config), CODE_DIGEST["fragment"])
# Every engine module (for a rule that does not name its entry modules).
ENGINE = mp.all_engine_sources()
THROUGHPUT_ROWS = mp.throughput_rows(config)
COMPACTION_MODES = list(config["compaction"]["modes"])
# The published experiments (migsim.studies.EXPERIMENTS): their summaries, figures and tables,
# each written by the generic rules aggregate_<name>, figure_<figure> and tables_<name>
# (aggregate.smk, figures.smk, tables.smk) or by the experiment's own rule (kernel_formats).
EXPERIMENTS = ms.experiments()
GENERIC = [e for e in EXPERIMENTS.values() if e.rule is None]


def throughput_run(row):
    params = mp.throughput_params(config, row)
    return mp.run_file(RESULTS, "throughput", row, params, CODE_DIGEST["throughput"])


def compaction_run(mode):
    params = mp.compaction_params(config, mode)
    return mp.run_file(RESULTS, "compaction", mode, params, CODE_DIGEST["compaction"])


def experiment_runs(kind):
    """The run files of the published experiment `kind` (throughput, compaction)."""
    if kind == "throughput":
        return [throughput_run(r) for r in THROUGHPUT_ROWS]
    return [compaction_run(m) for m in COMPACTION_MODES]


def run_files():
    """The run files of the current configuration (what results/index.html lists)."""
    return [f for kind in ("throughput", "compaction") for f in experiment_runs(kind)]


def summary_file(name):
    """The summary Parquet of the published experiment `name`."""
    return f"{RESULTS}/summary/{name}.parquet"


def figure_files():
    """Every figure of the published experiments, in every format."""
    names = [f for e in EXPERIMENTS.values() for f in e.figures]
    return expand(
        f"{RESULTS}/figures/{{name}}.{{fmt}}", name=names, fmt=mp.FIGURE_FORMATS
    )


# The figure of results/index.html's answer: drawn from the throughput summary by that
# experiment's figure job, whose renderer is running already (vl-convert's start, 0.7 CPU s of
# the index job, the pipeline's last); rule index reads it.
ANSWER_EXPERIMENT = "throughput"
ANSWER_FIGURE = f"{RESULTS}/figures/answer.svg"


def figure_outputs(exp):
    """The outputs of figures_<name> (figures.smk), ``<figure>_<fmt>`` for every figure of
    the published experiment `exp` and format, the SVG flagged for Snakemake's report; the
    answer's figure (``answer``) for ANSWER_EXPERIMENT.
    """
    out = {"answer": ANSWER_FIGURE} if exp.name == ANSWER_EXPERIMENT else {}
    for fig in exp.figures:
        for fmt in mp.FIGURE_FORMATS:
            path = f"{RESULTS}/figures/{fig}.{fmt}"
            if fmt == "svg":
                path = report(
                    path,
                    caption=f"../report/figure_{fig}.rst",
                    category=exp.category,
                    subcategory="Figures",
                )
            out[f"{fig}_{fmt}"] = path
    return out


def figure_code(exp):
    """The code inputs of figures_<name>: the figure helpers and the job functions, and the
    answer's modules for ANSWER_EXPERIMENT."""
    modules = ["output.figures", "pipeline", "jobs"]
    if exp.name == ANSWER_EXPERIMENT:
        modules += ["output.answer", "output.front"]
    return [mp.module_source(m) for m in modules]


def table_files():
    """Every table of the published experiments, as Markdown and HTML."""
    names = [t for e in EXPERIMENTS.values() for t in e.tables]
    return expand(f"{RESULTS}/tables/{{name}}.{{fmt}}", name=names, fmt=["md", "html"])


def summary_files():
    """The summary of every published experiment (every one is an input of the index)."""
    return [summary_file(name) for name in EXPERIMENTS]


def default_targets():
    return [f"{RESULTS}/index.html", *summary_files(), *figure_files(), *table_files()]


def study_summary(name):
    """The summary Parquet of study `name`: named by the digest of its parameters, the code
    its job imports and the platform (migsim.studies.study_run), like every simulation output.
    """
    code = mp.files_digest([*STUDY_ENGINE[name], PLATFORM])  # workflow/rules/whatif.smk
    return ms.study_run(RESULTS, name, ms.study_params(config, name), code)


def study_file(name, key):
    """One rendered output of study `name` (migsim.studies.study_files: html, svg, png, md,
    table_html, findings, page); `name` may be a wildcard. Its summary: study_summary.
    """
    return ms.study_files(RESULTS, name)[key]


def study_outputs(names):
    """The per-study outputs of whatif_render (whatif.smk), ``<study>_<key>`` for every
    study of `names` and file of migsim.studies.study_files but its summary; the figure's SVG
    and the table page flagged for Snakemake's report, labelled with the study."""
    out = {}
    for name in names:
        for key, path in ms.study_files(RESULTS, name).items():
            if key in ("svg", "table_html"):
                path = report(
                    path,
                    caption="../report/study.rst",
                    category="Studies",
                    subcategory=name,
                    labels={"study": name, "file": key},
                )
            out[f"{name}_{key}"] = path
    return out


def whatif_targets():
    """Every output of the enabled studies (workflow/rules/whatif.smk) and their page."""
    files = [f"{RESULTS}/whatif/index.html"] if WHATIF else []
    for name in WHATIF:
        files += list(ms.study_files(RESULTS, name, study_summary(name)).values())
    return files


def trace_targets():
    """The traces of every mode with `trace:` in the config; the comparison with a real trace
    with `trace.compare_with`."""
    tr = config.get("trace")
    if not tr:
        return []
    out = [
        f"{RESULTS}/traces/compaction-{m}.{ext}"
        for m in COMPACTION_MODES
        for ext in ("trace", "parquet")
    ]
    if tr.get("compare_with"):
        out.append(f"{RESULTS}/compare/trace.md")
    return out


def host_settings(which):
    """The settings of the host jobs `which` (copy, compaction: the probes; twin) from the
    `host` section, with defaults (migsim.host.pipeline probe_params, twin_params). Imported
    when a host job is planned, not at every start: the module imports Polars and NumPy (0.3 s
    before the first job of any run)."""
    import migsim.host.pipeline as mh

    host = config.get("host", {})
    return mh.twin_params(host) if which == "twin" else mh.probe_params(host, which)


def host_engine(wildcards):
    """The engine source files of the host jobs (Snakemake does not track imported packages)."""
    return mp.engine_sources("host.pipeline", "calibrate.host")
