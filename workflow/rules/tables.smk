# Stage 5: Markdown tables in the published layout (and HTML pages of them for the report):
# one rule tables_<name> for every published experiment with the generic rules
# (migsim.studies.EXPERIMENTS, common.smk GENERIC): its simulated table and the one beside the
# published values (<name>_vs_published).

for exp in GENERIC:

    rule:
        name:
            f"tables_{exp.name}"
        input:
            summary=summary_file(exp.name),
            code=[mp.module_source(m) for m in ("output.tables", "pipeline", "jobs")],
        output:
            md=f"{RESULTS}/tables/{exp.name}.md",
            html=report(
                f"{RESULTS}/tables/{exp.name}.html",
                caption=f"../report/table_{exp.name}.rst",
                category=exp.category,
                subcategory="Tables",
            ),
            vs_md=f"{RESULTS}/tables/{exp.name}_vs_published.md",
            vs_html=report(
                f"{RESULTS}/tables/{exp.name}_vs_published.html",
                caption=f"../report/table_{exp.name}_vs_published.rst",
                category=exp.category,
                subcategory="Tables",
            ),
        log:
            f"{RESULTS}/logs/tables/{exp.name}.log",
        priority: PRIORITY[f"tables_{exp.name}"]
        localrule: True
        conda:
            "../envs/migsim.yaml"
        params:
            job=job_params(kind=exp.name),
        shell:
            migsim_job("tables")
