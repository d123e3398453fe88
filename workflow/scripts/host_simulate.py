"""Snakemake adapter of rule host_simulate: migsim.host.pipeline.simulate_copy and simulate_compaction."""

from migsim.host.pipeline import simulate_compaction, simulate_copy
from migsim.pipeline import job_log

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "simulate the measured host setups", smk.params.probe):
    simulate_copy(smk.input.platform, smk.input.copy_runs, smk.output.copy_runs)
    simulate_compaction(
        smk.input.platform, smk.input.compaction, dict(smk.params.probe), smk.output.compaction
    )
