"""Snakemake adapter of rule kernel_formats: migsim.studies.kernel_formats.kernel_outputs."""

from pathlib import Path

from migsim.pipeline import job_log
from migsim.studies.kernel_formats import kernel_outputs

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "allocation latency and mmtests report"):
    outputs = dict(smk.output.items())
    outputs["figure"] = str(Path(smk.output.svg).with_suffix(""))
    kernel_outputs(
        list(smk.input.runs),
        outputs,
        seed=smk.params.seed,
        digest=smk.params.digest,
        bundle=smk.input.bundle,
    )
