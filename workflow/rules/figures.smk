# Stage 4: figures (Altair), each as offline HTML, SVG and PNG; the SVG goes into the report.
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
    figure_throughput,
    figure_speedup,
    figure_parity,
    figure_compaction,


rule figure_throughput:
    input:
        summary=rules.aggregate_throughput.output.summary,
        code=mp.module_source("output.figures"),
        bundle=rules.vega_bundle.output.bundle,
    output:
        html=f"{RESULTS}/figures/throughput.html",
        svg=report(
            f"{RESULTS}/figures/throughput.svg",
            caption="../report/figure_throughput.rst",
            category="Throughput",
            subcategory="Figures",
        ),
        png=f"{RESULTS}/figures/throughput.png",
    log:
        f"{RESULTS}/logs/figures/throughput.log",
    conda:
        "../envs/migsim.yaml"
    params:
        name="throughput",
    script:
        "../scripts/figure.py"


rule figure_speedup:
    input:
        summary=rules.aggregate_throughput.output.summary,
        code=mp.module_source("output.figures"),
        bundle=rules.vega_bundle.output.bundle,
    output:
        html=f"{RESULTS}/figures/speedup.html",
        svg=report(
            f"{RESULTS}/figures/speedup.svg",
            caption="../report/figure_speedup.rst",
            category="Throughput",
            subcategory="Figures",
        ),
        png=f"{RESULTS}/figures/speedup.png",
    log:
        f"{RESULTS}/logs/figures/speedup.log",
    conda:
        "../envs/migsim.yaml"
    params:
        name="speedup",
    script:
        "../scripts/figure.py"


rule figure_parity:
    input:
        summary=rules.aggregate_throughput.output.summary,
        code=mp.module_source("output.figures"),
        bundle=rules.vega_bundle.output.bundle,
    output:
        html=f"{RESULTS}/figures/parity.html",
        svg=report(
            f"{RESULTS}/figures/parity.svg",
            caption="../report/figure_parity.rst",
            category="Throughput",
            subcategory="Figures",
        ),
        png=f"{RESULTS}/figures/parity.png",
    log:
        f"{RESULTS}/logs/figures/parity.log",
    conda:
        "../envs/migsim.yaml"
    params:
        name="parity",
    script:
        "../scripts/figure.py"


rule figure_compaction:
    input:
        summary=rules.aggregate_compaction.output.summary,
        code=mp.module_source("output.figures"),
        bundle=rules.vega_bundle.output.bundle,
    output:
        html=f"{RESULTS}/figures/compaction.html",
        svg=report(
            f"{RESULTS}/figures/compaction.svg",
            caption="../report/figure_compaction.rst",
            category="Compaction",
            subcategory="Figures",
        ),
        png=f"{RESULTS}/figures/compaction.png",
    log:
        f"{RESULTS}/logs/figures/compaction.log",
    conda:
        "../envs/migsim.yaml"
    params:
        name="compaction",
    script:
        "../scripts/figure.py"
