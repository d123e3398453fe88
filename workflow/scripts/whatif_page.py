"""Snakemake adapter of rule whatif_page: migsim.output.pages.write_page."""

from migsim.output.pages import write_page
from migsim.pipeline import job_log
from migsim.studies import study_files

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "results/whatif/index.html"):
    write_page(
        smk.output.page,
        {s: study_files(smk.params.results, s) for s in smk.params.studies},
        dict(smk.params.titles),
    )
