"""Snakemake adapter of rule throughput: migsim.pipeline.simulate_throughput_row."""

from migsim.pipeline import job_log, simulate_throughput_row

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], f"throughput row {smk.wildcards.row}", smk.params.cell):
    simulate_throughput_row(smk.input.platform, smk.params.cell, smk.output.runs)
