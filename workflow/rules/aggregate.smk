# Stage 3: Polars aggregation of the run files into summary Parquet files.


localrules:
    aggregate_throughput,
    aggregate_compaction,


rule aggregate_throughput:
    input:
        runs=[throughput_run(row) for row in THROUGHPUT_ROWS],
        reference=REFERENCE["throughput"],
        code=[mp.module_source("output.tables"), mp.module_source("pipeline")],
    output:
        summary=f"{RESULTS}/summary/throughput.parquet",
    log:
        f"{RESULTS}/logs/aggregate/throughput.log",
    conda:
        "../envs/migsim.yaml"
    params:
        kind="throughput",
        digest=mp.experiment_digest(config, "throughput"),
        seed=config["seed"],
    script:
        "../scripts/aggregate.py"


rule aggregate_compaction:
    input:
        runs=[compaction_run(mode) for mode in COMPACTION_MODES],
        reference=REFERENCE["compaction"],
        code=[mp.module_source("output.tables"), mp.module_source("pipeline")],
    output:
        summary=f"{RESULTS}/summary/compaction.parquet",
    log:
        f"{RESULTS}/logs/aggregate/compaction.log",
    conda:
        "../envs/migsim.yaml"
    params:
        kind="compaction",
        digest=mp.experiment_digest(config, "compaction"),
        seed=config["seed"],
    script:
        "../scripts/aggregate.py"
