"""Snakemake adapter of rule index: migsim.pipeline.write_index."""

from migsim.pipeline import job_log, write_index

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "results/index.html"):
    write_index(
        smk.output.index,
        figures=list(smk.input.figures),
        tables=list(smk.input.tables),
        summaries=list(smk.input.summaries),
        runs=list(smk.input.runs),
        config=smk.params.config,
        whatif=list(smk.input.whatif),
        series=list(smk.input.series),
        answer_svg=smk.output.answer,
    )
