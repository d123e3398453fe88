# The studies of migsim.studies (the what-if studies and any plug-in named by `study_modules`):
# one job per study (its matrix inside) -> summary Parquet; one job per study -> its figure
# (offline HTML, SVG, PNG), Markdown and HTML table, findings paragraph and own page; then
# results/whatif/index.html. A study runs when its section of `whatif:` is there and does not
# say `enabled: false`. Every rule here is generic over the registry.

STUDIES = ms.registry(config)
WHATIF = ms.enabled(config)
# The study jobs rerun when the code they import changes (Snakemake does not track it).
STUDY_ENGINE = {name: mp.study_sources(config, name) for name in WHATIF}
STUDY_PRESENTATION = [
    mp.module_source(m) for m in ("output.figures", "output.study_pages")
]


localrules:
    whatif_render,
    whatif_page,


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
    # the longest jobs of the pipeline (each study simulates its own compaction runs): they
    # start right after the fragment/compaction chain, before the short throughput rows
    priority: 40
    conda:
        "../envs/migsim.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        study=lambda wildcards: ms.study_params(config, wildcards.study),
    script:
        "../scripts/whatif_study.py"


rule whatif_render:
    input:
        summary=lambda wildcards: study_summary(wildcards.study),
        code=lambda wildcards: [*STUDY_ENGINE[wildcards.study], *STUDY_PRESENTATION],
        bundle=rules.vega_bundle.output.bundle,
    output:
        html=study_file("{study}", "html"),
        svg=report(
            study_file("{study}", "svg"),
            caption="../report/study.rst",
            category="Studies",
            subcategory="{study}",
        ),
        png=study_file("{study}", "png"),
        md=study_file("{study}", "md"),
        table_html=report(
            study_file("{study}", "table_html"),
            caption="../report/study.rst",
            category="Studies",
            subcategory="{study}",
        ),
        findings=study_file("{study}", "findings"),
        page=study_file("{study}", "page"),
    log:
        f"{RESULTS}/logs/whatif/{{study}}_render.log",
    wildcard_constraints:
        study="|".join(WHATIF) or "(?!)",
    conda:
        "../envs/migsim.yaml"
    params:
        study=lambda wildcards: STUDIES[wildcards.study].module,
        caption=lambda wildcards: f"{STUDIES[wildcards.study].title}. {STUDIES[wildcards.study].caption}",
    script:
        "../scripts/whatif_render.py"


rule whatif_page:
    input:
        files=[
            f
            for s in WHATIF
            for f in ms.study_files(RESULTS, s, study_summary(s)).values()
        ],
        code=STUDY_PRESENTATION,
    output:
        page=f"{RESULTS}/whatif/index.html",
    log:
        f"{RESULTS}/logs/whatif/report.log",
    conda:
        "../envs/migsim.yaml"
    params:
        summaries={s: study_summary(s) for s in WHATIF},
        titles={s: STUDIES[s].title for s in WHATIF},
    script:
        "../scripts/whatif_page.py"
