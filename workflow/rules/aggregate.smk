# Stage 3: Polars aggregation of the run files into summary Parquet files: one rule
# aggregate_<name> for every published experiment that reproduces a reference table
# (migsim.studies.EXPERIMENTS, common.smk GENERIC).

for exp in GENERIC:

    rule:
        name:
            f"aggregate_{exp.name}"
        input:
            runs=experiment_runs(exp.runs),
            reference=REFERENCE[exp.reference],
            code=[mp.module_source(m) for m in ("output.tables", "pipeline", "jobs")],
        output:
            summary=summary_file(exp.name),
        log:
            f"{RESULTS}/logs/aggregate/{exp.name}.log",
        priority: PRIORITY[f"aggregate_{exp.name}"]
        localrule: True
        conda:
            "../envs/migsim.yaml"
        params:
            job=job_params(
                kind=exp.name,
                digest=mp.experiment_digest(config, exp.name),
                seed=config["seed"],
            ),
        shell:
            migsim_job("aggregate")
