"""Snakemake adapter of rule host_compare: migsim.host.pipeline.compare."""

from pathlib import Path

from migsim.host.pipeline import compare
from migsim.pipeline import job_log

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "host: simulated against measured"):
    compare(
        smk.input.compaction,
        smk.input.probe,
        smk.output.md,
        smk.output.json,
        str(Path(smk.output.svg).with_suffix("")),
        calibration_ratio=smk.params.calibration_ratio,
    )
