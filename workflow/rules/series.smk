# Every published throughput number of the series (all reference tables, every version)
# beside its simulation with the 90% interval: fitted or predicted, error, inside or not.

import migsim.studies.series as series_study


localrules:
    series_page,


rule series_page:
    input:
        platform=PLATFORM,
        references=series_study.reference_files(workflow.basedir),
        code=ENGINE,
        bundle=rules.vega_bundle.output.bundle,
    output:
        csv=f"{RESULTS}/series/published.csv",
        parquet=f"{RESULTS}/series/published.parquet",
        md=f"{RESULTS}/series/published.md",
        html=f"{RESULTS}/series/published.html",
        svg=report(
            f"{RESULTS}/series/published.svg",
            caption="../report/figure_series.rst",
            category="Throughput",
            subcategory="Figures",
        ),
        png=f"{RESULTS}/series/published.png",
    log:
        f"{RESULTS}/logs/series/published.log",
    priority: PRIORITY["series_page"]
    conda:
        "../envs/migsim.yaml"
    params:
        job=job_params(),
    shell:
        migsim_job("series_page")
