"""Snakemake adapter of rule host_fit: migsim.host.pipeline.fit_platform."""

from migsim.host.pipeline import fit_platform
from migsim.pipeline import job_log

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "fit the host platform"):
    fit_platform(
        smk.input.copy_runs,
        smk.input.compaction,
        smk.input.base,
        smk.output.platform,
        calibration_ratio=smk.params.calibration_ratio,
    )
