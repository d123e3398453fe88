"""Snakemake adapter of rule fragment: migsim.pipeline.fragment_node."""

from migsim.pipeline import fragment_node, job_log

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "fragment the node", smk.params.fragmentation):
    fragment_node(smk.input.platform, smk.params.fragmentation, smk.output.state)
