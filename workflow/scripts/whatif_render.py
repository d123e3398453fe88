"""Snakemake adapter of rule whatif_render: migsim.output.study_pages.render_studies."""

from migsim.output.study_pages import render_studies
from migsim.pipeline import job_log

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "studies: figures, tables, findings, pages; results/whatif/index.html"):
    render_studies(smk.params.modules, smk.params.files, smk.output.page, bundle=smk.input.bundle)
