"""pytest plug-in of benchmarks/suite_timeline.py: every test's start and end (wall clock, s)
and its CPU seconds (the process's own and its reaped children's, resource.getrusage), one
JSON line per test in $MIGSIM_TIMELINE_DIR/<worker>.jsonl (worker: the pytest-xdist worker
id, or "main" in a serial run). Loaded with `-p pytest_timeline` (benchmarks/ on PYTHONPATH);
it changes no test and no result."""

from __future__ import annotations

import json
import os
import resource
import time

_state: dict = {}


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _write(record: dict) -> None:
    out = _state.get("out")
    if out is not None:
        out.write(json.dumps(record) + "\n")
        out.flush()


def pytest_configure(config) -> None:
    directory = os.environ.get("MIGSIM_TIMELINE_DIR")
    if not directory:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    _state["out"] = open(os.path.join(directory, f"{worker}.jsonl"), "w")  # noqa: SIM115
    _write({"event": "start", "t": time.time(), "cpu": _cpu_s()})


def pytest_runtest_logstart(nodeid: str, location) -> None:
    _state[nodeid] = (time.time(), _cpu_s())


def pytest_runtest_logfinish(nodeid: str, location) -> None:
    t0, cpu0 = _state.pop(nodeid, (time.time(), _cpu_s()))
    _write({"event": "test", "id": nodeid, "t0": t0, "t1": time.time(), "cpu": _cpu_s() - cpu0})


def pytest_unconfigure(config) -> None:
    _write({"event": "end", "t": time.time(), "cpu": _cpu_s()})
    out = _state.pop("out", None)
    if out is not None:
        out.close()
