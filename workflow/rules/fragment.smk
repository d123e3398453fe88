# Stage 1: the fragmented NUMA node every compaction mode starts from, named by the digest of
# its parameters, code and platform (common.smk STATE; kept across a failing rerun).


rule fragment:
    input:
        platform=PLATFORM,
        engine=ENGINE_FOR["fragment"],
    output:
        state=STATE,
    log:
        f"{RESULTS}/logs/fragment.log",
    benchmark:
        f"{RESULTS}/logs/benchmarks/fragment.tsv"
    priority: PRIORITY["fragment"]
    conda:
        "../envs/migsim.yaml"
    threads: 1
    # measured on a Slurm job (README, cluster section): engine < 250 MB and < 10 s at full
    # scale; the whole job, Snakemake included, peaks below 700 MB
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        job=job_params(fragmentation=mp.fragmentation_params(config)),
    shell:
        migsim_job("fragment")
