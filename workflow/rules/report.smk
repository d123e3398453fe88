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
        runs=run_files(),
        whatif=lambda wildcards: whatif_targets(),  # workflow/rules/whatif.smk
        # rule series_page (workflow/rules/series.smk)
        series=expand(
            f"{RESULTS}/series/published.{{ext}}", ext=["parquet", "html", "png"]
        ),
        answer=ANSWER_FIGURE,  # rule figures_throughput (workflow/rules/figures.smk)
        code=[
            mp.module_source(m)
            for m in (
                "output.pages",
                "output.html",
                "output.study_pages",
                "output.answer",
                "output.front",
                "pipeline",
                "jobs",
            )
        ],
    output:
        index=f"{RESULTS}/index.html",
    log:
        f"{RESULTS}/logs/index.log",
    priority: PRIORITY["index"]
    conda:
        "../envs/migsim.yaml"
    params:
        job=job_params(config=config),
    shell:
        migsim_job("index")


# `snakemake prune`: delete the run files, study summaries and states that the current
# configuration no longer
# uses (older results, kept so that a failing rerun never loses them; results/README.md).
localrules:
    prune,


rule prune:
    log:
        f"{RESULTS}/logs/prune.log",
    conda:
        "../envs/migsim.yaml"
    params:
        keep=lambda wildcards: [
            *run_files(),
            STATE,
            *[study_summary(s) for s in WHATIF],
        ],
    script:
        "../scripts/prune.py"
