# Stage 2b: direct compaction from the fragmented node: one job for every mode. The page-level
# run does not depend on the mode (only its cost does), so it is simulated once and costed for
# each mode and run (migsim.pipeline.simulate_compaction_modes); one Parquet file per mode,
# named by the digest of its parameters, code and platform (common.smk compaction_run), so a
# failing rerun with a changed value leaves the previous files in place.


rule compaction:
    input:
        platform=PLATFORM,
        state=STATE,
        engine=ENGINE_FOR["compaction"],
    output:
        runs=[compaction_run(mode) for mode in COMPACTION_MODES],
    log:
        f"{RESULTS}/logs/compaction.log",
    benchmark:
        f"{RESULTS}/logs/benchmarks/compaction.tsv"
    priority: PRIORITY["compaction"]
    conda:
        "../envs/migsim.yaml"
    threads: 1
    # measured on a Slurm job (README, cluster section): engine < 250 MB and < 10 s at full
    # scale; the whole job, Snakemake included, peaks below 700 MB
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        job=job_params(
            jobs=[mp.compaction_params(config, mode) for mode in COMPACTION_MODES]
        ),
    shell:
        migsim_job("compaction")
