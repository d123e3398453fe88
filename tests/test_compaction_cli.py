"""`migsim compaction` and `migsim reproduce compaction`: output, JSON, bad input."""

from __future__ import annotations

import json

import pytest

from migsim.cli import main


def test_compaction_text_output(capsys):
    assert main(["compaction", "--node-size", "64M", "--allocations", "4"]) == 0
    out = capsys.readouterr().out
    assert "pages migrated" in out and "compact_stall" in out


def test_compaction_json_row(capsys):
    args = ["compaction", "--node-size", "64M", "--allocations", "4", "--mode", "busy-dma",
            "--channels", "2", "--json"]  # fmt: skip
    assert main(args) == 0
    row = json.loads(capsys.readouterr().out)
    contract = {
        "experiment", "mode", "channels", "cluster_max", "node_bytes", "allocations",
        "free_ratio", "pattern", "seed", "min_batch_bytes", "wall_ms", "pages_migrated",
        "dma_copies", "hog_iterations", "user_pct", "sys_pct", "idle_pct", "alloc_success",
        "alloc_fail", "migrate_calls", "compact_stall", "compact_success", "compact_fail",
        "compact_migrate_scanned", "compact_free_scanned", "compact_isolated",
        "pgmigrate_success", "pgmigrate_fail", "platform",
    }  # fmt: skip
    assert contract <= set(row)
    assert row["mode"] == "busy-dma" and row["channels"] == 2 and row["alloc_success"] == 4
    assert row["hog_iterations"] > 0 and row["dma_copies"] == row["pages_migrated"]


def test_state_file_is_used(tmp_path, capsys):
    from migsim.fragment import FragmentConfig, fragment, save_state

    cfg = FragmentConfig(node_bytes=32 << 20, pattern="clustered")
    path = tmp_path / "z.npz"
    save_state(fragment(cfg), path, cfg)
    assert main(["compaction", "--state", str(path), "--allocations", "2", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["node_bytes"] == 32 << 20 and row["pattern"] == "clustered"


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--node-size", "1G", "--allocations", "600"], ["--allocations", "more memory"]),
        (["--free-ratio", "1.0"], ["--free-ratio", "[0, 1)"]),
        (["--free-ratio", "-0.5"], ["--free-ratio", "[0, 1)"]),
        (["--order", "11"], ["--order", "0..10"]),
        (["--allocations", "0"], ["--allocations", ">= 1"]),
        (["--pattern", "zigzag"], ["--pattern", "even, random, clustered"]),
        (["--mode", "fast"], ["--mode", "busy-dma"]),
        (["--node-size", "3M"], ["--node-size", "2M"]),
        (["--channels", "2"], ["--channels", "dma"]),
        (["--mode", "dma", "--channels", "99"], ["--channels", "1..16"]),
    ],
)
def test_bad_input_is_one_line_naming_the_argument(args, names, capsys):
    with pytest.raises(SystemExit) as exc:
        rc = main(["compaction", *args])
        raise SystemExit(rc)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    for n in names:
        assert n in err
