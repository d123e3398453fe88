"""Snakemake adapter of rule whatif_page: migsim.output.study_pages.write_page."""

from pathlib import Path

from migsim.output.study_pages import write_page
from migsim.pipeline import job_log
from migsim.studies import study_files

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "results/whatif/index.html"):
    results = str(Path(smk.output.page).parent.parent)  # the page is <results>/whatif/index.html
    write_page(
        smk.output.page,
        {s: study_files(results, s, path) for s, path in smk.params.summaries.items()},
        dict(smk.params.titles),
    )
