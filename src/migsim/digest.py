"""Hashes and seeds every layer shares (standard library only): the configuration hash that
goes into each Parquet file's metadata, the seed of one cell derived from the configured
seed and the cell's key, and the digest-named paths of the simulation outputs."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def config_hash(obj: Any) -> str:
    """Short, stable hash of a JSON-serialisable object (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cell_seed(base_seed: int, *key: Any) -> int:
    """Seed of one cell or run, derived from the configured seed and the cell's key, so that
    cells have independent noise, and adding a cell changes no other cell's numbers (a 32-bit
    seed, stable across runs and machines)."""
    blob = json.dumps([int(base_seed), *key], separators=(",", ":"), default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")


def output_digest(params: Any, code_digest: str) -> str:
    """The digest that names one job's output: its parameters and its code and platform."""
    return config_hash({"params": params, "code": code_digest})


def run_file(results: str, kind: str, key: str, params: Any, code_digest: str) -> str:
    """``<results>/runs/<kind>/<key>/<digest>.parquet`` of one simulation job."""
    return f"{results}/runs/{kind}/{key}/{output_digest(params, code_digest)}.parquet"


def state_file(results: str, params: Any, code_digest: str) -> str:
    """``<results>/state/<digest>/fragmentation.npz``: the fragmented node."""
    return f"{results}/state/{output_digest(params, code_digest)}/fragmentation.npz"
