"""Snakemake adapter of rule vega_bundle: migsim.output.figures.write_javascript_bundle."""

from migsim.output.figures import write_javascript_bundle
from migsim.pipeline import job_log

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "vega-embed bundle for the offline HTML figures"):
    write_javascript_bundle(smk.output.bundle)
