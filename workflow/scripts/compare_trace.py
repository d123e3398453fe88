"""Snakemake adapter of rule compare_trace: migsim.studies.kernel_formats.compare_outputs."""

from pathlib import Path

from migsim.pipeline import job_log
from migsim.studies.kernel_formats import compare_outputs

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "real trace beside the simulated baseline"):
    compare_outputs(smk.input.real, smk.input.sim, txt=smk.output.txt, md=smk.output.md,
                    figure=str(Path(smk.output.svg).with_suffix("")))  # fmt: skip
