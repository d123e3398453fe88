"""Snakemake adapter of rules aggregate_*: migsim.pipeline.aggregate."""

from migsim.pipeline import aggregate, job_log

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], f"aggregate {smk.params.kind}"):
    aggregate(
        smk.params.kind,
        list(smk.input.runs),
        smk.input.reference,
        smk.output.summary,
        digest=smk.params.digest,
        seed=smk.params.seed,
    )
