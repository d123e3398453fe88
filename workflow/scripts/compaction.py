"""Snakemake adapter of rule compaction: migsim.pipeline.simulate_compaction_modes."""

from migsim.pipeline import job_log, simulate_compaction_modes

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "compaction, every mode from one simulation", smk.params.jobs):
    simulate_compaction_modes(smk.input.platform, smk.input.state, smk.params.jobs, smk.output.runs)
