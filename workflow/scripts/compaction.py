"""Snakemake adapter of rule compaction: migsim.pipeline.simulate_compaction_mode."""

from migsim.pipeline import job_log, simulate_compaction_mode

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], f"compaction mode {smk.wildcards.mode}", smk.params.run):
    simulate_compaction_mode(smk.input.platform, smk.input.state, smk.params.run, smk.output.runs)
