"""Snakemake adapter of rule compaction_trace: migsim.studies.kernel_formats.trace_mode."""

from migsim.pipeline import job_log
from migsim.studies.kernel_formats import trace_mode

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], f"compaction trace {smk.wildcards.mode}", smk.params.run):
    trace_mode(smk.input.platform, smk.input.state, smk.params.run, smk.output.text,
               smk.output.events, smk.params.max_events)  # fmt: skip
