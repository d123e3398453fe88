# Stage 4: figures (Altair), each as offline HTML, SVG and PNG; the SVG goes into the report.
# One rule figure_<figure> for every figure of a published experiment with the generic rules
# (migsim.studies.EXPERIMENTS, common.smk GENERIC), drawn from the experiment's summary.
# The script every offline HTML figure inlines (Vega, Vega-Lite, vega-embed) is built once per
# run by vega_bundle (vl-convert takes seconds to build it) and read by every figure job.


rule vega_bundle:
    output:
        bundle=f"{RESULTS}/cache/vega-bundle.js",
    log:
        f"{RESULTS}/logs/figures/vega_bundle.log",
    conda:
        "../envs/migsim.yaml"
    script:
        "../scripts/vega_bundle.py"


localrules:
    vega_bundle,


for exp in GENERIC:
    for fig in exp.figures:

        rule:
            name:
                f"figure_{fig}"
            input:
                summary=summary_file(exp.name),
                code=mp.module_source("output.figures"),
                bundle=rules.vega_bundle.output.bundle,
            output:
                html=f"{RESULTS}/figures/{fig}.html",
                svg=report(
                    f"{RESULTS}/figures/{fig}.svg",
                    caption=f"../report/figure_{fig}.rst",
                    category=exp.category,
                    subcategory="Figures",
                ),
                png=f"{RESULTS}/figures/{fig}.png",
            log:
                f"{RESULTS}/logs/figures/{fig}.log",
            localrule: True
            conda:
                "../envs/migsim.yaml"
            params:
                name=fig,
            script:
                "../scripts/figure.py"
