"""Helpers of the workflow tests: run the real snakemake on a copy of the workflow, read its
dry-run plan, share one smoke run between every test (and pytest-xdist worker) that reads it,
decode PNG files (no imaging library needed)."""

from __future__ import annotations

import atexit
import contextlib
import copy
import fcntl
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TIMEOUT_S = 900  # a hung snakemake must never hang the test run


def copy_workflow(dst: Path, *, with_src: bool = True) -> Path:
    """Copy the Snakefile, workflow/ and config/ (and src/, run through PYTHONPATH, so that
    tests can touch engine files without touching the real tree) to `dst`. src/ keeps the
    bytecode the tree has (__pycache__, as an installed tree has it): copy2 keeps the sources'
    modification times, which the .pyc files are checked against, so an edited source is
    compiled again; without it, where PYTHONDONTWRITEBYTECODE is set, every job of a run in
    the copy compiles each migsim module it imports (~0.05 CPU s a job)."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "Snakefile", dst / "Snakefile")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake")
    shutil.copytree(ROOT / "workflow", dst / "workflow", ignore=ignore)
    shutil.copytree(ROOT / "config", dst / "config", ignore=ignore)
    if with_src:
        shutil.copytree(ROOT / "src", dst / "src", ignore=shutil.ignore_patterns(".snakemake"))
    return dst


def env_for(workdir: Path) -> dict[str, str]:
    """Environment of a snakemake run in `workdir`: its own copy of migsim first on the path."""
    env = dict(os.environ)
    if (workdir / "src" / "migsim").is_dir():
        env["PYTHONPATH"] = os.pathsep.join(
            [str(workdir / "src"), *filter(None, [env.get("PYTHONPATH")])]
        )
    return env


# ---------------------------------------------------------------------------------------------
# snakemake from a forked interpreter that has imported it once
# ---------------------------------------------------------------------------------------------
#
# `python -m snakemake` spends ~2.3 of a dry run's ~3.4 CPU seconds importing Snakemake and its
# plug-ins' libraries (boto3, pandas, smart_open, ...: `python -X importtime`), the same in every
# one of the suite's ~40 invocations. So each pytest process starts one server that imports
# them once (not migsim, which every run imports from its own PYTHONPATH) and forks a child per
# invocation. The child is what `python -m snakemake ARGS` would be: the same entry point
# (snakemake.cli.main) and argv, its own working directory, environment and sys.path (the run's
# PYTHONPATH first), stdout and stderr to their own files, non-daemon threads joined and
# atexit handlers run before it exits with main's status. test_pipeline_dryrun's
# test_the_forked_snakemake_plans_what_a_fresh_process_plans compares the two.
# MIGSIM_TEST_SNAKEMAKE_FORK=0, or a platform without fork, runs every invocation as a fresh
# process.

_SERVER_CODE = r"""
import atexit, importlib, json, os, sys, threading, traceback
from pathlib import Path
import snakemake, snakemake.cli, snakemake.workflow
for name in ("snakemake.report.html_reporter", "jsonschema", "nbformat", "smart_open", "yaml"):
    try:  # what a run imports after the command line (a missing one is imported by none)
        importlib.import_module(name)
    except ImportError:
        pass
assert "migsim" not in sys.modules, "the snakemake server must not import migsim"
MAIN = str(Path(snakemake.__file__).with_name("__main__.py"))
own = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
rest = [p for p in sys.path if p and p not in own]
out = os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(req["cwd"])
            os.environ.clear()
            os.environ.update(req["env"])
            extra = [p for p in req["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
            sys.path[:] = [req["cwd"], *extra, *rest]
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(os.open(req["stdout"], os.O_WRONLY | os.O_TRUNC), 1)
            os.dup2(os.open(req["stderr"], os.O_WRONLY | os.O_TRUNC), 2)
            sys.argv = [MAIN, *req["args"]]
            snakemake.workflow.Workflow._rundir = str(Path.cwd().absolute())
            try:
                snakemake.cli.main(req["args"])
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            for t in threading.enumerate():
                if t is not threading.main_thread() and not t.daemon:
                    t.join()
            atexit._run_exitfuncs()
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(json.dumps({"pid": pid}), file=out, flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), file=out, flush=True)
"""


class _Server:
    """The snakemake server of this pytest process (started on first use)."""

    proc: subprocess.Popen | None = None

    @classmethod
    def get(cls) -> subprocess.Popen | None:
        if os.environ.get("MIGSIM_TEST_SNAKEMAKE_FORK", "1") == "0" or not hasattr(os, "fork"):
            return None
        if cls.proc is None or cls.proc.poll() is not None:
            cls.proc = subprocess.Popen(
                [sys.executable, "-c", _SERVER_CODE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            atexit.register(cls.stop)
        return cls.proc

    @classmethod
    def stop(cls) -> None:
        if cls.proc is not None and cls.proc.poll() is None:
            cls.proc.stdin.close()
            cls.proc.wait(timeout=60)
        cls.proc = None


def _reply(server: subprocess.Popen, deadline: float | None) -> dict:
    """The server's next JSON line. Read from the pipe's descriptor into a buffer of our own
    (kept on `server`): a buffered readline() can take both lines of a quick run (pid, then
    exit code) at once, and select() would then wait for a line already read."""
    fd = server.stdout.fileno()
    buf = getattr(server, "reply_buffer", b"")
    while b"\n" not in buf:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            server.reply_buffer = buf
            raise TimeoutError
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise RuntimeError(f"the snakemake server exited ({server.poll()})")
        buf += chunk
    line, _, server.reply_buffer = buf.partition(b"\n")
    return json.loads(line)


def run_snakemake(
    workdir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = TIMEOUT_S
) -> subprocess.CompletedProcess:
    """`python -m snakemake ARGS` in `workdir` with `env` (default env_for(workdir)): stdout
    and stderr as text, the exit status; raises subprocess.TimeoutExpired (the run killed)
    after `timeout` seconds, as subprocess.run does."""
    env = env_for(workdir) if env is None else env
    cmd = [*SNAKEMAKE, *args]
    server = _Server.get()
    if server is None:
        return subprocess.run(
            cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout
        )
    with tempfile.TemporaryDirectory(prefix="snakemake-run-") as d:
        out, err = Path(d, "stdout"), Path(d, "stderr")
        out.touch()
        err.touch()
        req = {"cwd": str(Path(workdir).absolute()), "env": env, "args": list(args),
               "stdout": str(out), "stderr": str(err)}  # fmt: skip
        server.stdin.write(json.dumps(req) + "\n")
        server.stdin.flush()
        deadline = time.monotonic() + timeout
        pid = _reply(server, None)["pid"]
        try:
            rc = _reply(server, deadline)["returncode"]
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            _reply(server, None)
            raise subprocess.TimeoutExpired(
                cmd, timeout, out.read_text(), err.read_text()
            ) from None
        return subprocess.CompletedProcess(
            cmd, rc, out.read_text(errors="replace"), err.read_text(errors="replace")
        )


def snakemake(
    workdir: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the real snakemake in `workdir` (run_snakemake); on failure with `check`, raise with
    its output."""
    proc = run_snakemake(workdir, *args, env=env)
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


def _run_root(tmp_path_factory) -> Path:
    """The directory every process of this pytest run shares: the base temporary directory,
    or under pytest-xdist its parent (each worker's base is a subdirectory of it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def _flock(path: Path, mode: int):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # releases the lock


def smoke_run(tmp_path_factory) -> Path:
    """A copy of the workflow that has run the smoke configuration to the end, once per test
    run: the first process (pytest-xdist worker) to ask builds it under a file lock, the others
    wait for it and read the same directory; a failed build fails every later caller with its
    output. Returns its directory (results under results/). Tests read it; one that changes a
    file in it holds smoke_edit() meanwhile (test_pipeline_dryrun), one that runs snakemake on
    it works in smoke_copy()."""
    root = _run_root(tmp_path_factory)
    work, done, failed = root / "smoke" / "w", root / "smoke.done", root / "smoke.failed"
    with _flock(root / "smoke.lock", fcntl.LOCK_EX):
        if failed.exists():
            raise AssertionError(f"the shared smoke run failed:\n{failed.read_text()}")
        if not done.exists():
            shutil.rmtree(work.parent, ignore_errors=True)
            copy_workflow(work)
            try:
                snakemake(work, "--cores", "2", *SMOKE_ARGS)
            except BaseException as err:  # a timeout too: no later caller rebuilds and waits
                failed.write_text(str(err) if isinstance(err, AssertionError) else repr(err))
                raise
            done.touch()
    return work


@contextlib.contextmanager
def smoke_edit(work: Path):
    """Hold while changing files of the shared smoke run `work` (and restoring them): no
    smoke_copy() is taken, and no snakemake runs in one, meanwhile."""
    with _flock(work.parent / "tree.lock", fcntl.LOCK_EX):
        yield


@contextlib.contextmanager
def smoke_copy(work: Path, dst: Path):
    """A copy of the shared smoke run `work` at `dst` in which snakemake may run: every file
    (results, .snakemake metadata, workflow, config) copied with its times, src/ a link to the
    run's own (a simulation's inputs are its engine files by their real path: the same path
    keeps the copy's outputs up to date). Held, with snakemake's runs in it, under the lock
    smoke_edit() takes exclusively."""
    with _flock(work.parent / "tree.lock", fcntl.LOCK_SH):
        ignore = shutil.ignore_patterns("src", "locks", "incomplete")
        shutil.copytree(work, dst, symlinks=True, ignore=ignore)
        (dst / "src").symlink_to(work / "src", target_is_directory=True)
        yield dst


VEGA_BUNDLE = Path("results") / "cache" / "vega-bundle.js"  # rule vega_bundle's output


def seed_vega_bundle(smoke: Path, dst: Path) -> None:
    """Put the Vega bundle of the smoke run `smoke` (smoke_run()) into the fresh workflow copy
    `dst`, so that a run there does not build it again (~2.5 CPU s: it has no inputs, so an
    existing bundle is up to date). Only the offline HTML figures inline it; no Parquet file
    depends on it."""
    target = dst / VEGA_BUNDLE
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(smoke / VEGA_BUNDLE, target)


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
