"""Snakemake adapter of rule host_probe_copy: migsim.host.pipeline.run_copy_probe."""

from migsim.host.pipeline import run_copy_probe
from migsim.pipeline import job_log

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "host copy probe", smk.params.probe):
    run_copy_probe(dict(smk.params.probe), smk.output.runs)
