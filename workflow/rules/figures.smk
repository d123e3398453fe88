# Stage 4: figures (Altair), each as offline HTML, SVG and PNG; the SVG goes into the report.
# One rule figures_<name> for every published experiment with the generic rules
# (migsim.studies.EXPERIMENTS, common.smk GENERIC): all of its figures, drawn from the
# experiment's summary in one job, so that the figure renderer (vl-convert's JavaScript
# runtime) and Altair start once per experiment, not once per figure.
# The script every offline HTML figure inlines (Vega, Vega-Lite, vega-embed) is built once per
# run by vega_bundle (vl-convert takes seconds to build it) and read by every figure job.


rule vega_bundle:
    output:
        bundle=f"{RESULTS}/cache/vega-bundle.js",
    log:
        f"{RESULTS}/logs/figures/vega_bundle.log",
    priority: PRIORITY["vega_bundle"]
    conda:
        "../envs/migsim.yaml"
    params:
        job=job_params(),
    shell:
        migsim_job("vega_bundle")


localrules:
    vega_bundle,


for exp in GENERIC:
    if not exp.figures:
        continue

    rule:
        name:
            f"figures_{exp.name}"
        input:
            summary=summary_file(exp.name),
            code=figure_code(exp),
            bundle=rules.vega_bundle.output.bundle,
        output:
            **figure_outputs(exp),
        log:
            f"{RESULTS}/logs/figures/{exp.name}.log",
        priority: PRIORITY[f"figures_{exp.name}"]
        localrule: True
        conda:
            "../envs/migsim.yaml"
        params:
            job=job_params(names=list(exp.figures)),
        shell:
            migsim_job("figures")
