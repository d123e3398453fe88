import os
import stat

import pytest

from migsim.atomic import atomic_open, atomic_write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_open(path, "w") as fh:
        fh.write("half")
        raise RuntimeError("job failed")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_written_file_gets_the_usual_mode(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    old = os.umask(0o022)
    try:
        atomic_write_text(path, "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_an_orphan_of_a_killed_writer_is_removed_at_the_next_write(tmp_path):
    """SIGKILL during an atomic write leaves its temporary file; the next write of the same
    target removes it (and leaves other targets' files and live writers' files alone)."""
    import signal
    import subprocess
    import sys

    path = tmp_path / "out.bin"
    code = (
        "import sys, time\n"
        "from migsim.atomic import atomic_open\n"
        "with atomic_open(sys.argv[1]) as fh:\n"
        "    fh.write(b'half'); fh.flush(); print('writing', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    orphans = [p.name for p in tmp_path.iterdir()]
    assert len(orphans) == 1 and orphans[0].startswith(".out.bin.") and orphans[0].endswith(".tmp")
    other = tmp_path / ".other.bin.h.1.x.tmp"  # another target's: not touched
    other.write_bytes(b"")
    live = tmp_path / f".out.bin.{__import__('socket').gethostname()}.{os.getpid()}.x.tmp"
    live.write_bytes(b"")  # a live writer's (this process): not touched
    atomic_write_text(path, "whole")
    assert path.read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.bin", other.name, live.name])
