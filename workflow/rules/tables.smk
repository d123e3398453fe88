# Stage 5: Markdown tables in the published layout (and HTML pages of them for the report).


localrules:
    tables_throughput,
    tables_compaction,


rule tables_throughput:
    input:
        summary=rules.aggregate_throughput.output.summary,
        code=mp.module_source("output.tables"),
    output:
        md=f"{RESULTS}/tables/throughput.md",
        html=report(
            f"{RESULTS}/tables/throughput.html",
            caption="../report/table_throughput.rst",
            category="Throughput",
            subcategory="Tables",
        ),
        vs_md=f"{RESULTS}/tables/throughput_vs_published.md",
        vs_html=report(
            f"{RESULTS}/tables/throughput_vs_published.html",
            caption="../report/table_throughput_vs_published.rst",
            category="Throughput",
            subcategory="Tables",
        ),
    log:
        f"{RESULTS}/logs/tables/throughput.log",
    conda:
        "../envs/migsim.yaml"
    params:
        kind="throughput",
    script:
        "../scripts/tables.py"


rule tables_compaction:
    input:
        summary=rules.aggregate_compaction.output.summary,
        code=mp.module_source("output.tables"),
    output:
        md=f"{RESULTS}/tables/compaction.md",
        html=report(
            f"{RESULTS}/tables/compaction.html",
            caption="../report/table_compaction.rst",
            category="Compaction",
            subcategory="Tables",
        ),
        vs_md=f"{RESULTS}/tables/compaction_vs_published.md",
        vs_html=report(
            f"{RESULTS}/tables/compaction_vs_published.html",
            caption="../report/table_compaction_vs_published.rst",
            category="Compaction",
            subcategory="Tables",
        ),
    log:
        f"{RESULTS}/logs/tables/compaction.log",
    conda:
        "../envs/migsim.yaml"
    params:
        kind="compaction",
    script:
        "../scripts/tables.py"
