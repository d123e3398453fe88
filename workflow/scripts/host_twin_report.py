"""Snakemake adapter of rule host_twin_report: migsim.host.pipeline.twin_report."""

from pathlib import Path

from migsim.host.pipeline import twin_report
from migsim.pipeline import job_log

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "host twin: table and figures"):
    twin_report(
        smk.input.twin,
        smk.output.md,
        str(Path(smk.output.parity_svg).with_suffix("")),
        str(Path(smk.output.calls_svg).with_suffix("")),
    )
