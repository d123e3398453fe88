"""Atomic file writes: write to a temporary file beside the target, then rename it into place,
so a failing job never leaves a truncated or half-written file under a real name.

The temporary file is ``.<name>.<host>.<pid>.<random>.tmp``. A writer killed with SIGKILL
cannot remove its own; the next write of the same target removes it: any of this host whose
process is gone, and any of another host (a shared file system) older than a day.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


STALE_S = 24 * 3600  # a temporary file of another host older than this is an orphan


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_orphans(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed writers of `path` left beside it; returns them."""
    path = Path(path)
    import socket  # here: 0.5 MiB, only where a file is written

    host = socket.gethostname()
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        parts = tmp.name[len(path.name) + 2 : -len(".tmp")].split(".")
        if len(parts) < 3 or not parts[-2].isdigit():
            continue  # not one of ours
        tmp_host, pid = ".".join(parts[:-2]), int(parts[-2])
        try:
            age = time.time() - tmp.stat().st_mtime
        except FileNotFoundError:
            continue
        if (tmp_host == host and pid != os.getpid() and not _alive(pid)) or age > STALE_S:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path` for writing; on a clean exit it gets the usual
    mode (0666 less the umask, not mkstemp's 0600) and is renamed to `path`; on an error it
    is removed and `path` is left as it was. Orphans of killed writers are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    import socket

    prefix = f".{path.name}.{socket.gethostname()}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
