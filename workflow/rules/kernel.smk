# Stage 4b: the compaction modes in the kernel developers' formats -- the order-9 allocation
# latency (summary, p5..p99 table, CDF figure beside the four-mode comparison) and the
# mmtests compare report of the modes; with `trace:` in the config, each mode's tracepoint
# events (tracefs text and Parquet) and, with `trace.compare_with`, a real trace beside the
# simulated baseline (results/compare/).


localrules:
    kernel_formats,
    compare_trace,


rule kernel_formats:
    input:
        runs=[compaction_run(mode) for mode in COMPACTION_MODES],
        code=[
            mp.module_source(m)
            for m in (
                "studies.kernel_formats",
                "formats.mmtests",
                "output.tables",
                "pipeline",
                "jobs",
            )
        ],
        bundle=rules.vega_bundle.output.bundle,
    output:
        summary=f"{RESULTS}/summary/alloc_latency.parquet",
        latency_md=f"{RESULTS}/tables/alloc_latency.md",
        latency_html=f"{RESULTS}/tables/alloc_latency.html",
        mmtests_txt=f"{RESULTS}/tables/mmtests_compaction.txt",
        mmtests_md=f"{RESULTS}/tables/mmtests_compaction.md",
        mmtests_html=f"{RESULTS}/tables/mmtests_compaction.html",
        html=f"{RESULTS}/figures/alloc_latency.html",
        svg=report(
            f"{RESULTS}/figures/alloc_latency.svg",
            caption="../report/figure_alloc_latency.rst",
            category="Compaction",
            subcategory="Figures",
        ),
        png=f"{RESULTS}/figures/alloc_latency.png",
    log:
        f"{RESULTS}/logs/kernel_formats.log",
    priority: PRIORITY["kernel_formats"]
    conda:
        "../envs/migsim.yaml"
    params:
        job=job_params(
            digest=mp.experiment_digest(config, "compaction"), seed=config["seed"]
        ),
    shell:
        migsim_job("kernel_formats")


# One job traces every mode (as rule compaction, one simulation costed for each mode that
# shares its control flow), not one job per mode simulating the same state again.
TRACE_MODES = ("baseline", "dma", "busy-baseline", "busy-dma")


rule compaction_trace:
    input:
        platform=PLATFORM,
        state=STATE,
        engine=ENGINE_FOR["compaction"],
    output:
        text=[f"{RESULTS}/traces/compaction-{m}.trace" for m in TRACE_MODES],
        events=[f"{RESULTS}/traces/compaction-{m}.parquet" for m in TRACE_MODES],
    log:
        f"{RESULTS}/logs/traces/compaction.log",
    conda:
        "../envs/migsim.yaml"
    params:
        job=job_params(
            runs=[mp.compaction_params(config, m) for m in TRACE_MODES],
            max_events=config.get("trace", {}).get("max_events", 2000000),
        ),
    shell:
        migsim_job("compaction_trace")


rule compare_trace:
    input:
        real=config.get("trace", {}).get("compare_with") or [],
        sim=f"{RESULTS}/traces/compaction-baseline.parquet",
        code=[
            mp.module_source(m)
            for m in ("studies.kernel_formats", "formats.mmtests", "pipeline", "jobs")
        ],
        bundle=rules.vega_bundle.output.bundle,
    output:
        txt=f"{RESULTS}/compare/trace.txt",
        md=f"{RESULTS}/compare/trace.md",
        html=f"{RESULTS}/compare/trace.html",
        svg=f"{RESULTS}/compare/trace.svg",
        png=f"{RESULTS}/compare/trace.png",
    log:
        f"{RESULTS}/logs/compare_trace.log",
    conda:
        "../envs/migsim.yaml"
    params:
        job=job_params(),
    shell:
        migsim_job("compare_trace")
