"""Snakemake adapter of rule series_page: migsim.studies.series.series_page."""

from pathlib import Path

from migsim.pipeline import job_log
from migsim.studies.series import series_page

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "series page"):
    series_page(
        smk.input.platform,
        str(Path(smk.input.references[0]).parent),
        smk.output.csv,
        smk.output.md,
        str(Path(smk.output.svg).with_suffix("")),
        smk.output.parquet,
        bundle=smk.input.bundle,
    )
