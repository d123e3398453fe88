"""Snakemake adapter of rule whatif_report: migsim.report_whatif.render_all."""

from migsim.pipeline import job_log
from migsim.report_whatif import render_all

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "what-if figures, tables, findings and page"):
    render_all(
        smk.params.results, list(smk.params.studies), smk.output.page, bundle=smk.input.bundle
    )
