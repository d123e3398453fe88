"""What the workflow's what-if study jobs call: the study parameters from the ``whatif``
section of the configuration, and the job that runs a study into its summary Parquet (the
presentation jobs are in ``migsim.report_whatif``, so that editing a figure does not rerun a
simulation).

One job per study (five jobs that run in parallel), each a single process with its matrix
inside, so Snakemake's per-job overhead stays small.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from migsim.units import parse_size

STUDIES = ("cluster_max", "engine_class", "hybrid", "fragmentation", "latency")
COMPACTION_STUDIES = ("cluster_max", "engine_class", "hybrid", "fragmentation")


def enabled_studies(config: Mapping) -> list[str]:
    """The studies switched on in the configuration (all of them by default)."""
    wi = config.get("whatif") or {}
    return [s for s in STUDIES if (wi.get(s) or {}).get("enabled", True)]


def _size(value: Any, name: str) -> int:
    if value in (0, "0"):
        return 0
    return parse_size(value, name=name)


def study_params(config: Mapping, study: str) -> dict[str, Any]:
    """Everything one study job depends on besides the platform file and the engine code
    (JSON-serialisable: Snakemake reruns the job when it changes)."""
    from migsim.pipeline import cell_seed

    if study not in STUDIES:
        raise ValueError(f"study: must be one of {', '.join(STUDIES)}; got {study!r}")
    wi = config["whatif"]
    sec = dict(wi[study])
    sec.pop("enabled", None)
    key = f"whatif.{study}"
    params: dict[str, Any] = {"study": study, "seed": cell_seed(int(config["seed"]), "whatif")}
    if study in COMPACTION_STUDIES:
        params["setup"] = {
            "node_bytes": parse_size(wi["node_bytes"], name="whatif.node_bytes"),
            "allocations": int(wi["allocations"]),
            "free_ratio": float(config["fragmentation"]["free_ratio"]),
            "pattern": str(config["fragmentation"]["pattern"]),
        }
    if study == "engine_class":
        sec["folio_sizes"] = [str(s) for s in sec["folio_sizes"]]
        sec["total_bytes"] = parse_size(sec["total_bytes"], name=f"{key}.total_bytes")
        sec["latency_scales"] = [float(s) for s in sec["latency_scales"]]
    if study == "hybrid":
        sec["thresholds"] = [
            _size(t, f"{key}.thresholds[{i}]") for i, t in enumerate(sec["thresholds"])
        ]
    if study == "fragmentation":
        sec["free_ratios"] = [float(r) for r in sec["free_ratios"]]
    if study == "latency":
        sec["total_bytes"] = parse_size(sec["total_bytes"], name=f"{key}.total_bytes")
        sec["knee_pct"] = float(sec["knee_pct"])
    params["kwargs"] = sec
    return params


def check_whatif_config(config: Mapping) -> None:
    """Checks the JSON schema cannot express (raises ValueError naming the key)."""
    wi = config.get("whatif")
    if not wi:
        return
    node = parse_size(wi["node_bytes"], name="whatif.node_bytes")
    need = int(wi["allocations"]) * (2 << 20)
    if need >= node:
        raise ValueError(
            f"config: whatif.allocations: {wi['allocations']} order-9 allocations need "
            f"{need >> 20}M, more than the node (whatif.node_bytes = {wi['node_bytes']})"
        )
    for study in enabled_studies(config):
        params = study_params(config, study)  # sizes parse, names are known
        kw = params["kwargs"]
        if "total_bytes" in kw:
            total = parse_size(kw["total_bytes"], name=f"whatif.{study}.total_bytes")
            for i, fs in enumerate(kw["folio_sizes"]):
                fb = parse_size(fs, name=f"whatif.{study}.folio_sizes[{i}]")
                if total % fb:
                    raise ValueError(
                        f"config: whatif.{study}.total_bytes: {kw['total_bytes']} is not a "
                        f"multiple of folio size {fs}"
                    )


def run_study(platform_path: str, params: Mapping, out_path: str) -> None:
    """Run one study and write its summary Parquet (schema, metadata, atomic)."""
    from migsim.cost.platform import load_platform
    from migsim.output.tables import write_parquet
    from migsim.pipeline import config_hash
    from migsim.studies import common as whatif
    from migsim.tables_whatif import SCHEMAS

    study = params["study"]
    platform = load_platform(platform_path)
    kwargs = dict(params["kwargs"])
    if study in ("latency", "engine_class"):
        kwargs["seed"] = params["seed"]
    if "setup" in params:
        kwargs["setup"] = whatif.CompactionSetup(seed=params["seed"], **params["setup"])
    df = getattr(whatif, f"study_{study}")(platform, **kwargs)
    write_parquet(
        df,
        out_path,
        SCHEMAS[study],
        config_hash=config_hash(dict(params)),
        seed=params["seed"],
        extra={"platform_digest": platform.digest(), "study": study},
    )
