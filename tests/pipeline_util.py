"""Helpers of the workflow tests: run the real snakemake on a copy of the workflow, read its
dry-run plan, decode PNG files (no imaging library needed)."""

from __future__ import annotations

import contextlib
import copy
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TIMEOUT_S = 900  # a hung snakemake must never hang the test run


def copy_workflow(dst: Path, *, with_src: bool = True) -> Path:
    """Copy the Snakefile, workflow/ and config/ (and src/, run through PYTHONPATH, so that
    tests can touch engine files without touching the real tree) to `dst`."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "Snakefile", dst / "Snakefile")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake")
    shutil.copytree(ROOT / "workflow", dst / "workflow", ignore=ignore)
    shutil.copytree(ROOT / "config", dst / "config", ignore=ignore)
    if with_src:
        shutil.copytree(ROOT / "src", dst / "src", ignore=ignore)
    return dst


def env_for(workdir: Path) -> dict[str, str]:
    """Environment of a snakemake run in `workdir`: its own copy of migsim first on the path."""
    env = dict(os.environ)
    if (workdir / "src" / "migsim").is_dir():
        env["PYTHONPATH"] = os.pathsep.join(
            [str(workdir / "src"), *filter(None, [env.get("PYTHONPATH")])]
        )
    return env


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real snakemake in `workdir`; on failure with `check`, raise with its output."""
    proc = subprocess.run(
        [*SNAKEMAKE, *args],
        cwd=workdir,
        env=env_for(workdir),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


_RULE_RE = re.compile(r"^(?:local)?rule (\w+):\s*$")
_OUTPUT_RE = re.compile(r"^\s+output: (.*)$")


def planned_jobs(dry_run_output: str) -> list[tuple[str, list[str]]]:
    """(rule, outputs) of every job in the text of ``snakemake -n``."""
    jobs: list[tuple[str, list[str]]] = []
    rule = None
    for line in dry_run_output.splitlines():
        m = _RULE_RE.match(line)
        if m:
            rule = m.group(1)
            jobs.append((rule, []))
            continue
        m = _OUTPUT_RE.match(line)
        if m and rule is not None and jobs and not jobs[-1][1]:
            jobs[-1] = (rule, [p.strip() for p in m.group(1).split(",")])
    return jobs


def plan(workdir: Path, *args: str) -> list[tuple[str, list[str]]]:
    """The jobs ``snakemake -n`` would run in `workdir` with extra `args`."""
    proc = snakemake(workdir, "-n", *args)
    return planned_jobs(proc.stdout + proc.stderr)


def rule_counts(jobs: list[tuple[str, list[str]]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for rule, _ in jobs:
        out[rule] = out.get(rule, 0) + 1
    return out


# ---------------------------------------------------------------------------------------------
# PNG
# ---------------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_png(data: bytes) -> tuple[int, int, int, np.ndarray]:
    """(width, height, bytes per pixel, pixels[height, width, channel]) of an 8-bit,
    non-interlaced greyscale/RGB/RGBA PNG. Raises ValueError on anything else or a corrupt
    file (bad signature, CRC or size)."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG signature")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise ValueError(f"bad CRC in chunk {kind!r}")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError("no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or bpp is None or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}")
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8)
    stride = width * bpp
    if raw.size != height * (stride + 1):
        raise ValueError("IDAT size does not match the image size")
    data = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        f, line = int(data[y, 0]), data[y, 1:].astype(np.int64)
        if f == 0:
            cur = line
        elif f == 1:  # Sub: running sum per channel along the row
            cur = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) & 0xFF
        elif f == 2:  # Up
            cur = (line + prev) & 0xFF
        elif f in (3, 4):  # Average, Paeth: sequential along the row
            cur = line.copy()
            for i in range(stride):
                a = int(cur[i - bpp]) if i >= bpp else 0
                b = int(prev[i])
                if f == 3:
                    pred = (a + b) // 2
                else:
                    c = int(prev[i - bpp]) if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (cur[i] + pred) & 0xFF
        else:
            raise ValueError(f"bad filter type {f} in row {y}")
        out[y] = cur
        prev = cur
    return width, height, bpp, out.reshape(height, width, bpp)


def ink_fraction(data: bytes) -> float:
    """Fraction of pixels that differ from the most common (background) pixel."""
    _, _, _, pixels = decode_png(data)
    flat = pixels.reshape(-1, pixels.shape[-1]).astype(np.int64)
    packed = flat @ (256 ** np.arange(flat.shape[1], dtype=np.int64))
    _, counts = np.unique(packed, return_counts=True)
    return 1.0 - counts.max() / packed.size


# ---------------------------------------------------------------------------------------------
# One smoke run per test session, shared by the workflow tests
# ---------------------------------------------------------------------------------------------

SMOKE_ARGS = ("--configfile", "config/smoke.yaml")
_SMOKE: dict[str, Path] = {}


def smoke_run(tmp_path_factory) -> Path:
    """A copy of the workflow that has run the smoke configuration to the end (once per
    session); returns its directory (results under results/)."""
    if "dir" not in _SMOKE:
        work = copy_workflow(tmp_path_factory.mktemp("smoke"))
        snakemake(work, "--cores", "2", *SMOKE_ARGS)
        _SMOKE["dir"] = work
    return _SMOKE["dir"]


def load_config(workdir: Path, *overlays: str) -> dict:
    """The configuration snakemake sees: config/config.yaml with `overlays` merged over it."""
    import yaml

    def merge(base: dict, over: dict) -> dict:
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    for o in overlays:
        config = merge(config, yaml.safe_load((workdir / o).read_text()))
    return config


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def snapshot(results: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under `results`: (mtime in ns, size in bytes, contents), to show nothing changed."""
    return {
        str(p.relative_to(results)): (p.stat().st_mtime_ns, p.stat().st_size, p.read_bytes())
        for p in sorted(results.rglob("*"))
        if p.is_file()
    }


def edit(config: dict, path: str, value=None, *, delete: bool = False) -> dict:
    """A copy of `config` with the dotted key `path` set to `value` (or deleted)."""
    out = copy.deepcopy(config)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    if delete:
        del node[last]
    else:
        node[last] = value
    return out


def study_summary(results: Path, name: str) -> Path:
    """The summary Parquet of study `name` in a fresh run under `results`: the one file of
    runs/whatif/<name>/ (named by a digest, migsim.studies.study_run)."""
    found = sorted((Path(results) / "runs" / "whatif" / name).glob("*.parquet"))
    assert len(found) == 1, (name, found)
    return found[0]


def config_error(workdir: Path, *, configfiles: tuple[str, ...] = (), config: tuple[str, ...] = ()):
    """The one-line error that ``snakemake --configfile F... --config K=V...`` in `workdir`
    stops with before any job, computed in-process, or None if the configuration passes.

    The configuration is assembled as Snakemake does it: the Snakefile's configfile
    (config/config.yaml), each `configfiles` merged over it, then each `config` entry parsed
    by Snakemake's own parser (snakemake.cli.parse_config) and merged; then the workflow's
    own steps (workflow/rules/common.smk): migsim.pipeline.coerce_config and validate_config
    against the workflow's schema. The real snakemake runs of tests/test_config_schema.py and
    tests/test_bad_inputs.py show that those steps stop the workflow before any job."""
    import yaml
    from snakemake.cli import parse_config, update_config

    from migsim import pipeline

    cfg = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    for f in configfiles:
        path = Path(f) if Path(f).is_absolute() else workdir / f
        update_config(cfg, yaml.safe_load(path.read_text()))
    update_config(cfg, parse_config(list(config)))
    schema = pipeline.load_schema(workdir / "workflow" / "schemas" / "config.schema.yaml")
    cfg.update(pipeline.coerce_config(cfg, schema))
    try:
        with _chdir(workdir):  # relative paths as the workflow resolves them (its workdir)
            pipeline.validate_config(cfg, schema, workdir)
    except ValueError as err:  # what common.smk turns into snakemake's WorkflowError
        return str(err)
    return None


@contextlib.contextmanager
def _chdir(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)
