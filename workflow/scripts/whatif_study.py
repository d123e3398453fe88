"""Snakemake adapter of rule whatif_study: migsim.studies.run_study."""

from migsim.pipeline import job_log
from migsim.studies import run_study

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], f"study {smk.wildcards.study}", smk.params.study):
    run_study(smk.input.platform, smk.params.study, smk.output.summary)
