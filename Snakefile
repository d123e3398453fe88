# migsim workflow: config -> fragmented node -> simulation runs (Parquet, one file per job)
# -> Polars summaries -> Altair figures, Markdown tables, results/index.html.
#
#   snakemake --cores all                                 # default matrix (config/config.yaml)
#   snakemake --cores all --configfile config/smoke.yaml  # tiny matrix
#   snakemake --report results/report.html                # Snakemake report with captions
#
# Rules live in workflow/rules/ (one .smk per stage); scripts in workflow/scripts/ call one
# migsim function each; all logic is in the migsim package (src/migsim).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/fragment.smk"
include: "workflow/rules/throughput.smk"
include: "workflow/rules/compaction.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/series.smk"
include: "workflow/rules/whatif.smk"
include: "workflow/rules/host.smk"
include: "workflow/rules/kernel.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        default_targets(),
        whatif_targets(),
        trace_targets(),
        rules.series_page.output,
