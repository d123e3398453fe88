"""Snakemake adapter of rules figures_*: migsim.pipeline.draw_figures."""

from pathlib import Path

from migsim.pipeline import draw_figures, job_log

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], f"figures {', '.join(smk.params.names)}"):
    stems = {
        name: str(Path(smk.output[f"{name}_svg"]).with_suffix("")) for name in smk.params.names
    }
    draw_figures(smk.input.summary, stems, bundle=smk.input.bundle)
