"""When the tests that touch the running kernel may run, and a guard that they restore it.

A test marked ``host`` changes kernel settings (THP, compaction_proactiveness) or triggers real
compaction (/proc/sys/vm/compact_memory). On a developer's machine that is a side effect no
plain ``pytest`` should have, so those tests run only when asked:

- in CI (``CI=true``) as root, where .ci/run runs on a fresh machine that nobody else uses;
- locally with ``pytest --host``, ``MIGSIM_HOST_TESTS=1`` or a ``-m`` expression that selects
  ``host`` (e.g. ``pytest -m host``).

Everywhere else they are skipped with the reason (``-ra`` prints it in the summary).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from pathlib import Path

ENV_OPT_IN = "MIGSIM_HOST_TESTS"
HOST_LOCK = "/tmp/host.lock"


def _ancestors() -> list[int]:
    """This process and its ancestors (pids), from /proc/<pid>/stat."""
    out, pid = [], os.getpid()
    while pid > 1:
        out.append(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def lock_held_by_ancestor(path: str = HOST_LOCK) -> bool:
    """Whether the flock on `path` is held by this process or an ancestor (``flock LOCK
    pytest ...``): taking it again through a new open file would wait for ever."""
    try:
        ino = os.stat(path).st_ino
        locks = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return False
    holders = {
        int(f[4])
        for f in (line.split() for line in locks)
        if len(f) > 5 and f[1] == "FLOCK" and f[5].endswith(f":{ino}")
    }
    return bool(holders & set(_ancestors()))


@contextlib.contextmanager
def host_lock(path: str = HOST_LOCK):
    """Hold the host lock (flock on `path`): one process at a time touches the real kernel.
    Where an ancestor already holds it (the tests run under ``flock /tmp/host.lock``) it is
    not taken again: that would deadlock."""
    if lock_held_by_ancestor(path):
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_SELECTS_HOST = re.compile(r"(?<!not )\bhost\b")


def host_tests_enabled(
    env: dict[str, str], euid: int, markexpr: str = "", option: bool = False
) -> tuple[bool, str]:
    """Whether host-marked tests run, and why (the skip reason when they do not)."""
    if option:
        return True, "--host given"
    if env.get(ENV_OPT_IN) == "1":
        return True, f"{ENV_OPT_IN}=1"
    if _SELECTS_HOST.search(markexpr or ""):
        return True, f"-m {markexpr!r} selects host"
    if env.get("CI") == "true":
        if euid == 0:
            return True, "CI=true as root"
        return False, f"CI=true but not root (uid {euid}): host tests need root"
    return False, (
        "changes kernel settings or triggers real compaction: opt in with `pytest --host`, "
        f"`{ENV_OPT_IN}=1` or `-m host` (on by default only where CI=true and root)"
    )


def changed_settings(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The settings whose content differs between two probe.snapshot_settings() results."""
    keys = sorted(set(before) | set(after))
    return [
        f"{k}: {before.get(k, '<absent>')!r} -> {after.get(k, '<absent>')!r}"
        for k in keys
        if before.get(k) != after.get(k)
    ]
