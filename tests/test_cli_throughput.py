import json
import re
import subprocess
import sys

import pytest

from migsim.cli import main


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "migsim.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_throughput_json(capsys, platform):
    """1 GiB of 64K folios is one batch: one TLB flush against a syscall, an LRU drain and
    16384 address lookups (do_pages_move). Each trial's noise scales both alike, so their
    ratio in the JSON's phase means is the platform's, by hand."""
    assert (
        main(["throughput", "--mode", "dma", "--folio-size", "64K", "--channels", "4", "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert {"mean_gbps", "sd_gbps", "trial_gbps", "phases_s"} <= out.keys()
    assert len(out["trial_gbps"]) == 5
    ph, c = out["phases_s"], platform.cpu
    call_us = c.syscall_us + c.lru_cache_disable_us + 16384 * c.addr_lookup_us
    assert ph["flush_s"] / ph["call_s"] == pytest.approx(c.tlb_flush_us / call_us, rel=1e-9)


def test_throughput_text(capsys):
    """The text report states the same mean as the JSON of the same run (two output paths),
    and its phase lines add up to the CPU-busy line (the CPU copier never waits)."""
    args = ["throughput", "--folio-size", "2M", "--total-bytes", "256M", "--trials", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    mean = float(re.search(r"throughput: ([0-9.]+) ± ", out).group(1))
    assert mean == pytest.approx(doc["mean_gbps"], abs=0.005)
    phases = [float(x) for x in re.findall(r"^  \w+ +([0-9.]+) ms", out, re.M)]
    busy = float(re.search(r"CPU busy ([0-9.]+) ms", out).group(1))
    assert len(phases) >= 4 and sum(phases) == pytest.approx(busy, abs=0.001 * len(phases))
    assert "CPU idle (waiting) 0.000 ms" in out


def test_reproduce_throughput_json(capsys):
    assert main(["reproduce", "throughput", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["cells"]) == 42 and out["mape_pct"] <= 8
    keys = {"mode", "channels", "folio_size", "simulated_gbps", "simulated_sd_gbps"}
    keys |= {"published_gbps", "published_sd_gbps"}
    assert keys <= out["cells"][0].keys()


def test_reproduce_throughput_table(capsys):
    assert main(["reproduce", "throughput"]) == 0
    text = capsys.readouterr().out
    assert "dma 16 ch" in text and "mean absolute percentage error" in text


@pytest.mark.parametrize(
    "args,name",
    [
        (["throughput", "--folio-size", "3K"], "--folio-size"),
        (["throughput", "--mode", "dma", "--channels", "0"], "--channels"),
        (["throughput", "--mode", "warp"], "--mode"),
        (["throughput", "--trials", "0"], "--trials"),
        (["throughput", "--channels", "4"], "--channels"),
        (["throughput", "--mode", "dma", "--channels", "17"], "--channels"),
        (["throughput", "--total-bytes", "6000"], "--total-bytes"),
        (["throughput", "--platform", "/nonexistent.yaml"], "--platform"),
    ],
)
def test_bad_arguments_exit_nonzero_with_one_line(args, name):
    p = run(*args)
    assert p.returncode != 0
    err = p.stderr.strip().splitlines()[-1]
    assert name in err, p.stderr
    assert "Traceback" not in p.stderr


def test_calibrate_writes_platform_and_residuals(tmp_path, reference_fit):
    out = tmp_path / "fit.yaml"
    # the committed platform's name: the fit the README's `migsim calibrate` runs (reference_fit)
    assert main(["calibrate", "--out", str(out), "--name", "epyc-zen3-ptdma"]) == 0
    assert out.exists() and out.with_suffix(".residuals.csv").exists()


def test_batch_limit_in_pages_or_size(capsys):
    assert main(["throughput", "--batch-limit", "512", "--trials", "1", "--json"]) == 0
    pages = json.loads(capsys.readouterr().out)["batch_limit_pages"]
    assert main(["throughput", "--batch-limit", "2M", "--trials", "1", "--json"]) == 0
    assert pages == json.loads(capsys.readouterr().out)["batch_limit_pages"] == 512
    p = run("throughput", "--batch-limit", "0")
    assert p.returncode != 0 and "--batch-limit" in p.stderr


def test_a_closed_pipe_ends_quietly(monkeypatch):
    """`migsim ... | head -1`: the reader went away; main stops with the SIGPIPE status
    instead of a traceback."""
    import os
    import sys

    r, w = os.pipe()
    os.close(r)  # the reader is gone before anything is written
    out = open(w, "w")  # noqa: SIM115 (closed below, after main redirected it)
    monkeypatch.setattr(sys, "stdout", out)
    try:
        assert main(["reproduce", "throughput", "--trials", "1"]) == 141
        out.write("x" * 100_000)  # the descriptor now leads to /dev/null: no second error
        out.flush()
    finally:
        out.close()
