"""Snakemake adapter of rules figure_*: migsim.pipeline.draw_figure."""

from pathlib import Path

from migsim.pipeline import draw_figure, job_log

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], f"figure {smk.params.name}"):
    stem = str(Path(smk.output.svg).with_suffix(""))
    draw_figure(smk.params.name, smk.input.summary, stem, bundle=smk.input.bundle)
