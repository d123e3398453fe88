# Host calibration, not part of the default target: `snakemake --cores 2 host`.
# Probes this machine (copy bandwidth; real compaction through /proc/sys/vm/compact_memory when
# root), fits a platform for it, simulates the measured setups with that platform and draws
# simulated against measured. Without root, or where compact_memory is not writable, the
# compaction probe writes an empty file with the reason and everything else still runs.
# Settings: an optional `host:` section of the configuration (defaults in migsim.host.pipeline).
HOST_CFG = config.get("host", {})
HOST_CALIBRATION_RATIO = float(HOST_CFG.get("calibration_ratio", 0.5))
HOST_DIR = f"{RESULTS}/host"


# the probes measure the machine that runs snakemake, and the fit and comparison belong to
# it: never submit them to a cluster
localrules:
    host,
    host_twin,
    host_twin_run,
    host_twin_report,
    host_probe_copy,
    host_probe_compaction,
    host_fit,
    host_simulate,
    host_compare,


rule host_probe_copy:
    output:
        runs=f"{HOST_DIR}/probe_copy.parquet",
    log:
        f"{HOST_DIR}/logs/probe_copy.log",
    conda:
        "../envs/migsim.yaml"
    # a measurement wants a quiet machine: ask for more cores than any machine has; Snakemake
    # caps a job's threads at --cores, so no other job runs beside it
    threads: 1024
    params:
        probe=lambda wildcards: host_settings("copy"),
    script:
        "../scripts/host_probe_copy.py"


rule host_probe_compaction:
    output:
        runs=f"{HOST_DIR}/probe_compaction.parquet",
    log:
        f"{HOST_DIR}/logs/probe_compaction.log",
    conda:
        "../envs/migsim.yaml"
    threads: 1024
    params:
        probe=lambda wildcards: host_settings("compaction"),
    script:
        "../scripts/host_probe_compaction.py"


rule host_fit:
    input:
        copy_runs=rules.host_probe_copy.output.runs,
        compaction=rules.host_probe_compaction.output.runs,
        base=PLATFORM,
        engine=host_engine,
    output:
        platform=f"{HOST_DIR}/platform.yaml",
    log:
        f"{HOST_DIR}/logs/fit.log",
    conda:
        "../envs/migsim.yaml"
    params:
        calibration_ratio=HOST_CALIBRATION_RATIO,
    script:
        "../scripts/host_fit.py"


rule host_simulate:
    input:
        platform=rules.host_fit.output.platform,
        copy_runs=rules.host_probe_copy.output.runs,
        compaction=rules.host_probe_compaction.output.runs,
        engine=host_engine,
    output:
        copy_runs=f"{HOST_DIR}/copy.parquet",
        compaction=f"{HOST_DIR}/compaction.parquet",
    log:
        f"{HOST_DIR}/logs/simulate.log",
    conda:
        "../envs/migsim.yaml"
    params:
        probe=lambda wildcards: host_settings("compaction"),
    script:
        "../scripts/host_simulate.py"


rule host_compare:
    input:
        compaction=rules.host_simulate.output.compaction,
        probe=rules.host_probe_compaction.output.runs,
        code=[mp.module_source("host.pipeline"), mp.module_source("output.figures")],
    output:
        md=f"{HOST_DIR}/prediction.md",
        json=f"{HOST_DIR}/prediction.json",
        html=f"{HOST_DIR}/figures/host_compaction.html",
        svg=f"{HOST_DIR}/figures/host_compaction.svg",
        png=f"{HOST_DIR}/figures/host_compaction.png",
    log:
        f"{HOST_DIR}/logs/compare.log",
    conda:
        "../envs/migsim.yaml"
    params:
        calibration_ratio=HOST_CALIBRATION_RATIO,
    script:
        "../scripts/host_compare.py"


rule host:
    input:
        rules.host_fit.output,
        rules.host_simulate.output,
        rules.host_compare.output,


# The host twin (`snakemake --cores 2 host_twin`): a real compact_memory of a fragmented region
# beside its prediction from a snapshot of this machine's memory taken just before (root; where
# it cannot run, the JSON holds the reason and the report says so). Settings: `host.twin`.
rule host_twin_run:
    output:
        twin=f"{HOST_DIR}/twin.json",
    log:
        f"{HOST_DIR}/logs/twin.log",
    conda:
        "../envs/migsim.yaml"
    threads: 1024
    params:
        twin=lambda wildcards: host_settings("twin"),
    script:
        "../scripts/host_twin_run.py"


rule host_twin_report:
    input:
        twin=rules.host_twin_run.output.twin,
        code=[mp.module_source("host.pipeline"), mp.module_source("output.figures")],
    output:
        md=f"{HOST_DIR}/twin.md",
        parity_html=f"{HOST_DIR}/figures/twin_parity.html",
        parity_svg=f"{HOST_DIR}/figures/twin_parity.svg",
        parity_png=f"{HOST_DIR}/figures/twin_parity.png",
        calls_html=f"{HOST_DIR}/figures/twin_calls.html",
        calls_svg=f"{HOST_DIR}/figures/twin_calls.svg",
        calls_png=f"{HOST_DIR}/figures/twin_calls.png",
    log:
        f"{HOST_DIR}/logs/twin_report.log",
    conda:
        "../envs/migsim.yaml"
    script:
        "../scripts/host_twin_report.py"


rule host_twin:
    input:
        rules.host_twin_report.output,
