"""The pipeline's shell jobs: ``python -m migsim.jobs VERB JOB_JSON LOG`` runs the job VERB
(one of JOBS), each one call of a function of migsim.pipeline or of a study module, what the
job's `script:` adapter in workflow/scripts/ did (the same log and outputs).

A `script:` job's interpreter imports Snakemake to unpickle its job object (about 0.08 CPU s
a job: a tables job took 0.60 CPU s as a script job, 0.52 as a shell job); a `shell:` job's
imports migsim alone. Every job of the default pipeline is a shell job
(workflow/rules/common.smk migsim_job). JOB_JSON holds the job's named inputs and outputs, its
params and wildcards: ``{"input": {...}, "output": {...}, "params": {...}, "wildcards": {...}}``
(job_spec). Nothing in migsim imports this module (migsim.pipeline is imported by the study
modules; these functions import them).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from migsim.pipeline import (
    aggregate,
    draw_figures,
    fragment_node,
    job_log,
    simulate_compaction_modes,
    simulate_throughput_row,
    write_index,
    write_tables,
)


@dataclasses.dataclass(frozen=True)
class Job:
    """A shell job's named inputs, outputs, params and wildcards (from its JOB_JSON)."""

    input: Mapping[str, Any]
    output: Mapping[str, Any]
    params: Mapping[str, Any]
    wildcards: Mapping[str, Any]


def _stem(path: str) -> str:
    """A figure's path without its suffix (what save_chart and its callers take)."""
    return str(Path(path).with_suffix(""))


def _job_fragment(job: Job, log: str) -> None:
    with job_log(log, "fragment the node", job.params["fragmentation"]):
        fragment_node(job.input["platform"], job.params["fragmentation"], job.output["state"])


def _job_throughput(job: Job, log: str) -> None:
    with job_log(log, f"throughput row {job.wildcards['row']}", job.params["cell"]):
        simulate_throughput_row(job.input["platform"], job.params["cell"], job.output["runs"])


def _job_compaction(job: Job, log: str) -> None:
    jobs = job.params["jobs"]
    with job_log(log, "compaction, every mode from one simulation", jobs):
        simulate_compaction_modes(
            job.input["platform"], job.input["state"], jobs, job.output["runs"]
        )


def _job_aggregate(job: Job, log: str) -> None:
    kind = job.params["kind"]
    with job_log(log, f"aggregate {kind}"):
        aggregate(
            kind,
            list(job.input["runs"]),
            job.input["reference"],
            job.output["summary"],
            digest=job.params["digest"],
            seed=job.params["seed"],
        )


def _job_tables(job: Job, log: str) -> None:
    kind = job.params["kind"]
    with job_log(log, f"tables {kind}"):
        write_tables(kind, job.input["summary"], dict(job.output))


def _job_vega_bundle(job: Job, log: str) -> None:
    from migsim.output.figures import write_javascript_bundle

    with job_log(log, "vega-embed bundle for the offline HTML figures"):
        write_javascript_bundle(job.output["bundle"])


def _job_figures(job: Job, log: str) -> None:
    names = job.params["names"]
    with job_log(log, f"figures {', '.join(names)}"):
        stems = {name: _stem(job.output[f"{name}_svg"]) for name in names}
        answer = job.output.get("answer")
        draw_figures(job.input["summary"], stems, bundle=job.input["bundle"], answer_svg=answer)


def _job_kernel_formats(job: Job, log: str) -> None:
    from migsim.studies.kernel_formats import kernel_outputs

    with job_log(log, "allocation latency and mmtests report"):
        outputs = {**job.output, "figure": _stem(job.output["svg"])}
        kernel_outputs(
            list(job.input["runs"]),
            outputs,
            seed=job.params["seed"],
            digest=job.params["digest"],
            bundle=job.input["bundle"],
        )


def _job_compaction_trace(job: Job, log: str) -> None:
    from migsim.studies.kernel_formats import trace_modes

    runs = job.params["runs"]
    with job_log(log, "compaction traces, every mode from one simulation", runs):
        out = job.output
        trace_modes(
            job.input["platform"],
            job.input["state"],
            runs,
            out["text"],
            out["events"],
            job.params["max_events"],
        )


def _job_compare_trace(job: Job, log: str) -> None:
    from migsim.studies.kernel_formats import compare_outputs

    with job_log(log, "real trace beside the simulated baseline"):
        out = job.output
        compare_outputs(
            job.input["real"],
            job.input["sim"],
            txt=out["txt"],
            md=out["md"],
            figure=_stem(out["svg"]),
            bundle=job.input["bundle"],
        )


def _job_whatif_study(job: Job, log: str) -> None:
    from migsim.studies import run_study

    with job_log(log, f"study {job.wildcards['study']}", job.params["study"]):
        run_study(job.input["platform"], job.params["study"], job.output["summary"])


def _job_whatif_render(job: Job, log: str) -> None:
    from migsim.output.study_pages import render_studies

    p = job.params
    with job_log(log, "studies: figures, tables, findings, pages; results/whatif/index.html"):
        render_studies(p["modules"], p["files"], job.output["page"], bundle=job.input["bundle"])


def _job_series_page(job: Job, log: str) -> None:
    from migsim.studies.series import series_page

    out = job.output
    with job_log(log, "series page"):
        series_page(
            job.input["platform"],
            str(Path(job.input["references"][0]).parent),
            out["csv"],
            out["md"],
            _stem(out["svg"]),
            out["parquet"],
            bundle=job.input["bundle"],
        )


def _job_index(job: Job, log: str) -> None:
    files = job.input
    with job_log(log, "results/index.html"):
        write_index(
            job.output["index"],
            figures=list(files["figures"]),
            tables=list(files["tables"]),
            summaries=list(files["summaries"]),
            runs=list(files["runs"]),
            config=job.params["config"],
            whatif=list(files["whatif"]),
            series=list(files["series"]),
            answer_from=job.input["answer"],
        )


JOBS = {
    "fragment": _job_fragment,
    "throughput": _job_throughput,
    "compaction": _job_compaction,
    "aggregate": _job_aggregate,
    "tables": _job_tables,
    "vega_bundle": _job_vega_bundle,
    "figures": _job_figures,
    "kernel_formats": _job_kernel_formats,
    "compaction_trace": _job_compaction_trace,
    "compare_trace": _job_compare_trace,
    "whatif_study": _job_whatif_study,
    "whatif_render": _job_whatif_render,
    "series_page": _job_series_page,
    "index": _job_index,
}


# Linux takes at most 128 KiB in one argument (MAX_ARG_STRLEN)
MAX_JOB_SPEC_BYTES = 128 * 1024 - 1


def job_spec(
    input: Mapping[str, Any],
    output: Mapping[str, Any],
    params: Mapping[str, Any],
    wildcards: Mapping[str, Any],
) -> str:
    """The JOB_JSON of a shell job (what job_main reads): named inputs and outputs (a path or a
    list of paths each), params and wildcards."""
    # keys in their order (the studies' order is that of their page)
    spec = json.dumps({"input": input, "output": output, "params": params, "wildcards": wildcards})
    if len(spec.encode()) > MAX_JOB_SPEC_BYTES:
        raise ValueError(
            f"a job's parameters take {len(spec.encode())} bytes as JSON, more than a command "
            f"line argument may ({MAX_JOB_SPEC_BYTES}): the configuration is too large"
        )
    return spec


def job_main(argv: Sequence[str]) -> int:
    """Run the shell job `argv` (``VERB JOB_JSON LOG``, VERB one of JOBS)."""
    usage = f"usage: python -m migsim.jobs {{{','.join(JOBS)}}} JOB_JSON LOG"
    if len(argv) != 3 or argv[0] not in JOBS:
        raise SystemExit(usage)
    verb, spec, log = argv
    try:
        job = Job(**json.loads(spec))
    except (ValueError, TypeError) as exc:
        raise SystemExit(f"{verb}: JOB_JSON: {exc}") from None
    JOBS[verb](job, log)
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(job_main(sys.argv[1:]))
