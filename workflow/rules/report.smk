# Stage 6: results/index.html, linking every figure and table; opens offline.
# (`snakemake --report results/report.html` builds Snakemake's own report from the outputs
# flagged with report() in figures.smk and tables.smk.)


localrules:
    index,


rule index:
    input:
        figures=figure_files(),
        tables=table_files(),
        summaries=summary_files(),
        whatif=lambda wildcards: whatif_targets(),  # workflow/rules/whatif.smk
        code=mp.module_source("report"),
    output:
        index=f"{RESULTS}/index.html",
    log:
        f"{RESULTS}/logs/index.log",
    params:
        config=config,
    script:
        "../scripts/index.py"
