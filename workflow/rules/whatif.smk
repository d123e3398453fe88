# What-if studies (issue 5): the questions the hardware experiment could not answer.
# One job per study (its matrix inside) -> summary Parquet; one job per study -> figure
# (offline HTML, SVG, PNG), Markdown and HTML table, findings paragraph; then
# results/whatif/index.html. Studies are sections of `whatif:` in the config, on by default.
import migsim.pipeline_whatif as mpw

# (the whatif section is checked with the rest of the configuration, common.smk)
WHATIF = mpw.enabled_studies(config) if config.get("whatif") else []
# The study jobs rerun when the engine code they import changes (Snakemake does not track it).
WHATIF_ENGINE = mp.engine_sources("studies.common", "pipeline_whatif", "tables_whatif")
WHATIF_PRESENTATION = [
    mp.module_source(m)
    for m in (
        "output.figures",
        "figures_whatif",
        "output.tables",
        "tables_whatif",
        "report",
        "report_whatif",
        "studies.common",
    )
]


def whatif_outputs(study):
    from migsim.report_whatif import study_files

    return study_files(RESULTS, study)


def whatif_report_outputs():
    """Every rendered file of the enabled studies; figures and tables go into the report."""
    from migsim.tables_whatif import TITLES

    files = []
    for study in WHATIF:
        out = whatif_outputs(study)
        for key, value in out.items():
            if key == "parquet":
                continue
            if key in ("svg", "table_html"):
                value = report(
                    value,
                    caption="../report/whatif.rst",
                    category="What-if studies",
                    subcategory=TITLES[study],
                )
            files.append(value)
    return files


def whatif_targets():
    files = [f"{RESULTS}/whatif/index.html"] if WHATIF else []
    for study in WHATIF:
        files += list(whatif_outputs(study).values())
    return files


localrules:
    whatif_report,


rule whatif_study:
    input:
        platform=PLATFORM,
        engine=WHATIF_ENGINE,
    output:
        summary=f"{RESULTS}/whatif/{{study}}.parquet",
    log:
        f"{RESULTS}/logs/whatif/{{study}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/whatif/{{study}}.tsv"
    wildcard_constraints:
        study="|".join(mpw.STUDIES),
    # the longest jobs of the pipeline (each study simulates its own compaction runs): they
    # start right after the fragment/compaction chain, before the short throughput rows
    priority: 40
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        study=lambda wildcards: mpw.study_params(config, wildcards.study),
    script:
        "../scripts/whatif_study.py"


rule whatif_report:
    input:
        summaries=expand(f"{RESULTS}/whatif/{{study}}.parquet", study=WHATIF),
        code=WHATIF_PRESENTATION,
        bundle=rules.vega_bundle.output.bundle,
    output:
        *whatif_report_outputs(),
        page=f"{RESULTS}/whatif/index.html",
    log:
        f"{RESULTS}/logs/whatif/report.log",
    params:
        results=RESULTS,
        studies=WHATIF,
    script:
        "../scripts/whatif_report.py"
