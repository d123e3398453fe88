"""Snakemake adapter of rule whatif_render: migsim.output.study_pages.render_study."""

from migsim.output.study_pages import render_study
from migsim.pipeline import job_log
from migsim.studies import load_study

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], f"study {smk.wildcards.study}: figure, table, findings, page"):
    outputs = {"parquet": smk.input.summary, **dict(smk.output.items())}
    render_study(load_study(smk.params.study), outputs, bundle=smk.input.bundle)
