# The studies of migsim.studies (the what-if studies and any plug-in named by `study_modules`):
# one job per study (its matrix inside) -> summary Parquet; one job for all studies -> each
# study's figure (offline HTML, SVG, PNG), Markdown and HTML table, findings paragraph and own
# page, and results/whatif/index.html (one process, so that the figure renderer and Altair
# start once, not once per study). A study runs when its section of `whatif:` is there and
# does not say `enabled: false`. Every rule here is generic over the registry.

STUDIES = ms.registry(config)
WHATIF = ms.enabled(config)
# The study jobs rerun when the code they import changes (Snakemake does not track it).
STUDY_ENGINE = {name: mp.study_sources(config, name) for name in WHATIF}
STUDY_PRESENTATION = [
    mp.module_source(m) for m in ("output.figures", "output.study_pages")
]


localrules:
    whatif_render,


rule whatif_study:
    input:
        platform=PLATFORM,
        engine=lambda wildcards: STUDY_ENGINE[wildcards.study],
    output:
        # named by the digest of its parameters, code and platform (common.smk study_summary):
        # a failing rerun with a changed value leaves the previous summary in place
        summary=f"{RESULTS}/runs/whatif/{{study}}/{{digest}}.parquet",
    log:
        f"{RESULTS}/logs/whatif/{{study}}/{{digest}}.log",
    benchmark:
        f"{RESULTS}/logs/benchmarks/whatif/{{study}}/{{digest}}.tsv"
    wildcard_constraints:
        study="|".join(WHATIF) or "(?!)",
        digest=r"[0-9a-f]{16}",
    # the longest jobs of the pipeline (each study simulates its own compaction runs): first
    priority: PRIORITY["whatif_study"]
    conda:
        "../envs/migsim.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        job=job_params(study=lambda wildcards: ms.study_params(config, wildcards.study)),
    shell:
        migsim_job("whatif_study")


rule whatif_render:
    input:
        summaries=[study_summary(s) for s in WHATIF],
        code=sorted(
            {f for s in WHATIF for f in STUDY_ENGINE[s]} | set(STUDY_PRESENTATION)
        ),
        bundle=rules.vega_bundle.output.bundle,
    output:
        **study_outputs(WHATIF),
        page=f"{RESULTS}/whatif/index.html",
    log:
        f"{RESULTS}/logs/whatif/render.log",
    priority: PRIORITY["whatif_render"]
    conda:
        "../envs/migsim.yaml"
    params:
        job=job_params(
            files={s: ms.study_files(RESULTS, s, study_summary(s)) for s in WHATIF},
            modules={s: STUDIES[s].module for s in WHATIF},
        ),
        # the report's caption of every study (workflow/report/study.rst)
        captions={s: f"{STUDIES[s].title}. {STUDIES[s].caption}" for s in WHATIF},
    shell:
        migsim_job("whatif_render")
