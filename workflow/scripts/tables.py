"""Snakemake adapter of rules tables_*: migsim.pipeline.write_tables."""

from migsim.pipeline import job_log, write_tables

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], f"tables {smk.params.kind}"):
    write_tables(smk.params.kind, smk.input.summary, dict(smk.output.items()))
