"""Snakemake adapter of rule prune: migsim.pipeline.prune_results (what it removed is printed
and written to the rule's log)."""

from pathlib import Path

from migsim.pipeline import prune_results

smk = snakemake  # noqa: F821 (defined by Snakemake's script preamble)

results = Path(smk.log[0]).parents[1]  # the log is <results>/logs/prune.log
removed = prune_results(results, list(smk.params.keep))
with open(smk.log[0], "w") as fh:
    for path in removed:
        print(f"removed results/{path}")
        print(f"removed results/{path}", file=fh)
