"""Snakemake adapter of rule host_twin_run: migsim.host.pipeline.run_twin."""

from migsim.host.pipeline import run_twin
from migsim.pipeline import job_log

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "host twin: real compact_memory against its prediction"):
    run_twin(smk.params.twin, smk.output.twin)
