# Stage 2b: direct compaction from the fragmented node, one job per mode with its runs.


rule compaction:
    input:
        platform=PLATFORM,
        state=rules.fragment.output.state,
        engine=ENGINE_FOR["compaction"],
    output:
        runs=f"{RESULTS}/runs/compaction/{{mode}}.parquet",
    log:
        f"{RESULTS}/logs/compaction/{{mode}}.log",
    benchmark:
        f"{RESULTS}/logs/benchmarks/compaction/{{mode}}.tsv"
    wildcard_constraints:
        mode=r"baseline|dma|busy-baseline|busy-dma",
    threads: 1
    # measured on a Slurm job (README, cluster section): engine < 250 MB and < 10 s at full
    # scale; the whole job, Snakemake included, peaks below 700 MB
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        run=lambda wildcards: mp.compaction_params(config, wildcards.mode),
    script:
        "../scripts/compaction.py"
