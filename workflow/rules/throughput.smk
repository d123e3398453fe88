# Stage 2a: the move_pages() throughput experiment, one job per row of the published table
# (baseline, each DMA channel count, each copy-thread count) with its folio sizes and trials.
# Each run file is named by the digest of its parameters, code and platform (common.smk), so a
# failing rerun with a changed value leaves the previous file in place.


rule throughput:
    input:
        platform=PLATFORM,
        engine=ENGINE_FOR["throughput"],
    output:
        runs=f"{RESULTS}/runs/throughput/{{row}}/{{digest}}.parquet",
    log:
        f"{RESULTS}/logs/throughput/{{row}}/{{digest}}.log",
    benchmark:
        f"{RESULTS}/logs/benchmarks/throughput/{{row}}/{{digest}}.tsv"
    wildcard_constraints:
        digest=r"[0-9a-f]{16}",
        row=r"baseline|dma-\d+ch|mt-\d+t",
    priority: PRIORITY["throughput"]
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
            cell=lambda wildcards: mp.throughput_params(config, wildcards.row)
        ),
    shell:
        migsim_job("throughput")
