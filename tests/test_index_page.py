"""results/index.html is the same for the same configuration however it was given (issue 16,
item 6: the `platform:` line moved with the order of --config's keys), and lists the run files
it was built from."""

from __future__ import annotations

from pathlib import Path

import yaml

from migsim.output.pages import build_index


def page(tmp_path: Path, config: dict, runs=()) -> str:
    return build_index(tmp_path, figures=[], tables=[], summaries=[], config=config, runs=runs)


def test_the_same_configuration_in_another_key_order_gives_the_same_page(tmp_path):
    config = yaml.safe_load(Path("config/config.yaml").read_text())
    # what `--config platform=... seed=3` does: the given keys move to the end of the mapping
    moved = {k: v for k, v in config.items() if k not in ("platform", "seed")}
    moved |= {"seed": config["seed"], "platform": config["platform"]}
    inner = {**config, "throughput": dict(reversed(list(config["throughput"].items())))}
    assert list(moved) != list(config)
    assert page(tmp_path, moved) == page(tmp_path, config) == page(tmp_path, inner)
    assert page(tmp_path, {**config, "seed": 99}) != page(tmp_path, config)


def test_the_page_lists_its_run_files(tmp_path):
    runs = [str(tmp_path / "runs" / "throughput" / "baseline" / "0123456789abcdef.parquet")]
    text = page(tmp_path, {"seed": 1}, runs)
    assert "href='runs/throughput/baseline/0123456789abcdef.parquet'" in text
