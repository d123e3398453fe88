"""Snakemake adapter of rule host_probe_compaction: migsim.host.pipeline.run_compaction_probe (writes an
empty file with the reason where the probe cannot run; the reason also goes to stderr)."""

import sys

from migsim.host.pipeline import run_compaction_probe
from migsim.pipeline import job_log

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

with job_log(smk.log[0], "host compaction probe", smk.params.probe):
    reason = run_compaction_probe(dict(smk.params.probe), smk.output.runs)
if reason:
    print(f"host: compaction probe skipped: {reason}", file=sys.stderr)
