"""migsim.output.tables: Parquet schemas and metadata, Polars aggregation, Markdown tables.

Expected values are worked out by hand from small inputs (means and sample standard
deviations of 2-3 numbers), never produced by the code under test."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

import migsim.studies as studies
from migsim import __version__
from migsim.output import tables
from migsim.studies import compaction as compaction_study
from migsim.studies import throughput as throughput_study
from migsim.studies.compaction import COMPACTION_RUNS, COMPACTION_SUMMARY
from migsim.studies.throughput import THROUGHPUT_RUNS, THROUGHPUT_SUMMARY

ROOT = Path(__file__).resolve().parents[1]
REF_TP = ROOT / "config" / "reference" / "move_pages_throughput.csv"
REF_CP = ROOT / "config" / "reference" / "compaction_modes.csv"


def tp_row(mode, folio, gbps, *, channels=None, threads=None, trial=0, wall=1.0):
    fb = {"4K": 4096, "16K": 16384, "2M": 2 << 20}[folio]
    return {
        "experiment": "throughput",
        "mode": mode,
        "channels": channels,
        "threads": threads,
        "folio_size": folio,
        "folio_bytes": fb,
        "total_bytes": 1 << 30,
        "batch_limit_pages": 262144,
        "fail_rate": 0.0,
        "rfc": "v4",
        "trial": trial,
        "seed": 7,
        "throughput_gbps": gbps,
        "lo_gbps": None,
        "hi_gbps": None,
        "wall_s": wall,
        "call_s": 0.0,
        "unmap_s": 0.1,
        "flush_s": 0.0,
        "copy_s": 0.8,
        "move_s": 0.1,
        "fallback_s": 0.0,
        "sys_s": 0.5,
        "idle_s": 0.5,
        "other_cpu_s": 0.0,
        "irq_s": 0.0,
        "first_folio_s": 0.9,
        "nr_batches": 1,
        "nr_folios": 10,
        "nr_pages": 10,
        "dma_copies": 0,
        "fallbacks": 0,
        **{k: 0 for k in ("pgmigrate_success", "pgmigrate_fail", "thp_migration_success")},
        **{k: 0 for k in ("thp_migration_fail", "thp_migration_split")},
        "platform": "test",
    }


def cp_row(mode, wall_ms, *, pages=1000, hog=None, user=0.0, sys=99.0, idle=1.0, seed=0):
    return {
        "experiment": "compaction",
        "mode": mode,
        "channels": 1,
        "cluster_max": 32,
        "node_bytes": 2 << 30,
        "allocations": 16384,
        "free_ratio": 0.5,
        "pattern": "even",
        "seed": seed,
        "min_batch_bytes": 0,
        "wall_ms": wall_ms,
        "pages_migrated": pages,
        "dma_copies": pages if "dma" in mode else None,
        "hog_iterations": hog,
        "user_pct": user,
        "sys_pct": sys,
        "idle_pct": idle,
        "irq_pct": 0.2,
        "softirq_pct": 0.1,
        "alloc_success": 10,
        "alloc_fail": 0,
        "migrate_calls": 5,
        "compact_stall": 10,
        "compact_success": 10,
        "compact_fail": 0,
        "compact_migrate_scanned": 100,
        "compact_free_scanned": 100,
        "compact_isolated": 100,
        "pgmigrate_success": pages,
        "pgmigrate_fail": 0,
        "order": 9,
        "fail_rate": 0.0,
        "rfc": "v4",
        "wall_s": wall_ms / 1e3,
        "sys_s": 0.0,
        "user_s": 0.0,
        "idle_s": 0.0,
        "sleep_s": 0.0,
        "context_switches": 0,
        "dma_fallbacks": 0 if "dma" in mode else None,
        "migrate_cpu_s": 0.0,
        "compaction_cpu_s": 0.0,
        "capture_in_migrate": 10,
        "capture_in_drain": 0,
        "pages_after_capture": 0,
        "platform": "test",
        **{f"alloc_latency_p{p}_us": float(p) for p in (5, 25, 50, 75, 90, 95, 99)},
        "alloc_latency_us": [1.0, 99.0],
    }


@pytest.fixture
def tp_runs() -> pl.DataFrame:
    rows = [
        tp_row("baseline", "4K", g, trial=i) for i, g in enumerate([3.0, 4.0, 5.0])
    ]  # mean 4, sd 1
    rows += [tp_row("baseline", "2M", g, trial=i) for i, g in enumerate([10.0, 12.0])]  # 11, √2
    rows += [
        tp_row("dma", "4K", g, channels=4, trial=i) for i, g in enumerate([2.0, 2.0, 2.0])
    ]  # 2, 0
    rows += [tp_row("dma", "2M", g, channels=4, trial=i) for i, g in enumerate([26.0, 28.0])]
    rows += [tp_row("mt", "2M", 20.0, threads=4)]
    random.Random(3).shuffle(rows)
    return THROUGHPUT_RUNS.frame(rows)


# ---------------------------------------------------------------------------------------------
# Schemas and files
# ---------------------------------------------------------------------------------------------


def test_schema_frame_names_missing_and_unexpected_columns():
    row = tp_row("baseline", "4K", 1.0)
    del row["wall_s"]
    row["colour"] = "red"
    with pytest.raises(ValueError, match=r"missing columns \['wall_s'\].*unexpected.*colour"):
        THROUGHPUT_RUNS.frame([row])


def test_conform_rejects_nulls_where_the_schema_forbids_them():
    df = THROUGHPUT_RUNS.frame([tp_row("baseline", "4K", 1.0)]).with_columns(
        pl.lit(None, pl.Float64).alias("wall_s")
    )
    with pytest.raises(ValueError, match="wall_s has null"):
        THROUGHPUT_RUNS.conform(df)


def test_written_file_has_the_schema_sorted_rows_and_metadata(tmp_path, tp_runs):
    path = tmp_path / "runs.parquet"
    tables.write_parquet(tp_runs, path, THROUGHPUT_RUNS, config_hash="abc123", seed=42)
    THROUGHPUT_RUNS.check_file(path)
    meta = tables.read_metadata(path)
    assert meta["migsim_version"] == __version__
    assert meta["config_hash"] == "abc123"
    assert meta["seed"] == "42"
    assert meta["schema"] == "throughput_runs"
    back = pl.read_parquet(path)
    keys = back.select("mode", "channels", "threads", "folio_bytes", "trial").rows()
    # baseline < dma < mt; null channels first; folio size ascending; trial ascending
    assert keys[0] == ("baseline", None, None, 4096, 0)
    assert keys[2] == ("baseline", None, None, 4096, 2)
    assert keys[3] == ("baseline", None, None, 2 << 20, 0)
    assert keys[-1] == ("mt", None, 4, 2 << 20, 0)
    # column docs travel with the file
    field = pq.read_schema(path).field("throughput_gbps")
    assert field.metadata[b"unit"] == b"GB/s"


def test_same_input_gives_byte_identical_files_whatever_the_row_order(tmp_path, tp_runs):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    tables.write_parquet(tp_runs, a, THROUGHPUT_RUNS, config_hash="h", seed=1)
    shuffled = tp_runs.sample(fraction=1.0, shuffle=True, seed=9)
    tables.write_parquet(shuffled, b, THROUGHPUT_RUNS, config_hash="h", seed=1)
    assert a.read_bytes() == b.read_bytes()
    text = a.read_bytes()
    assert b"2026" not in text and b"created_at" not in text  # no timestamps


def test_run_rows_without_polars_give_the_same_bytes(tmp_path):
    """A simulation job writes its rows with PyArrow alone (output.arrow.write_rows): the file
    is byte-identical to write_parquet of the rows' DataFrame, for shuffled rows with nulls,
    ints for float columns and floats for int ones, NaNs, list columns; a string for a float
    column, which PyArrow does not convert, takes the Polars path, with the same bytes."""
    from migsim.output import arrow

    tp = [tp_row("baseline", "4K", g, trial=i) for i, g in enumerate([3.0, 4, 5.0])]
    tp += [tp_row("dma", "2M", 26.0, channels=c, trial=1) for c in (16, 1, None, 4)]
    tp += [tp_row("mt", "16K", float("nan"), threads=2) | {"lo_gbps": 1.0, "hi_gbps": 2}]
    random.Random(5).shuffle(tp)
    cp = [cp_row(m, w, hog=h, seed=s) for m, w, h, s in [("dma", 2.0, None, 1),
          ("baseline", 3.5, 7, 0), ("busy-dma", 1.0, 9, 2), ("baseline", 3.5, 7, 1)]]  # fmt: skip
    cases = [(tp, THROUGHPUT_RUNS), (cp, COMPACTION_RUNS)]
    cases += [([tp[0] | {"seed": 7.0, "nr_pages": 7.5}, *tp[1:]], THROUGHPUT_RUNS)]  # floats
    cases += [([tp[0] | {"lo_gbps": "n/a"}, *tp[1:]], THROUGHPUT_RUNS)]  # Polars: a null
    assert arrow.arrow_table(cases[-2][0], THROUGHPUT_RUNS) is not None
    assert arrow.arrow_table(cases[-1][0], THROUGHPUT_RUNS) is None
    nan_key = [tp_row("dma", "4K", 1.0, channels=1, trial=0) | {"fail_rate": float("nan")}]
    assert "fail_rate" not in THROUGHPUT_RUNS.sort_by  # (a NaN in a key: see arrow_table)
    cases += [(nan_key + tp, THROUGHPUT_RUNS)]
    meta = {"config_hash": "c0ffee", "seed": 7, "extra": {"platform_digest": "p"}}
    for i, (rows, schema) in enumerate(cases):
        arrow.write_rows(rows, tmp_path / f"a{i}.parquet", schema, **meta)
        tables.write_parquet(schema.frame(rows), tmp_path / f"b{i}.parquet", schema, **meta)
        a, b = (tmp_path / f"a{i}.parquet").read_bytes(), (tmp_path / f"b{i}.parquet").read_bytes()
        assert a == b, (i, schema.name)
    with pytest.raises(ValueError, match="missing columns"):
        arrow.write_rows([{"mode": "x"}], tmp_path / "x.parquet", THROUGHPUT_RUNS, **meta)
    nulls = [tp[0] | {"mode": None}]
    with pytest.raises(ValueError, match="column mode has null values"):
        arrow.write_rows(nulls, tmp_path / "x.parquet", THROUGHPUT_RUNS, **meta)


def test_check_file_rejects_another_schema(tmp_path, tp_runs):
    path = tmp_path / "runs.parquet"
    tables.write_parquet(tp_runs, path, THROUGHPUT_RUNS, config_hash="h", seed=1)
    with pytest.raises(ValueError, match="schema differs"):
        COMPACTION_RUNS.check_file(path)


def test_failed_write_leaves_the_old_file_untouched(tmp_path, tp_runs):
    path = tmp_path / "runs.parquet"
    tables.write_parquet(tp_runs, path, THROUGHPUT_RUNS, config_hash="h", seed=1)
    before = path.read_bytes()
    broken = tp_runs.drop("wall_s")
    with pytest.raises(ValueError, match="wall_s"):
        tables.write_parquet(broken, path, THROUGHPUT_RUNS, config_hash="h", seed=1)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["runs.parquet"]  # no temporary left


# ---------------------------------------------------------------------------------------------
# Reference tables
# ---------------------------------------------------------------------------------------------


def test_reference_throughput_table():
    ref = throughput_study.load_reference_throughput(REF_TP)
    assert ref.height == 42
    base = ref.filter(pl.col("mode") == "baseline")
    assert base.height == 6 and base["channels"].null_count() == 6
    cell = ref.filter((pl.col("channels") == 16) & (pl.col("folio_size") == "2M")).row(
        0, named=True
    )
    assert cell["published_gbps"] == 66.86 and cell["published_sd_gbps"] == 0.81
    assert cell["folio_bytes"] == 2 << 20


def test_reference_compaction_table():
    ref = compaction_study.load_reference_compaction(REF_CP)
    assert ref.height == 4 * 7
    wall = ref.filter((pl.col("mode") == "dma") & (pl.col("metric") == "wall_ms"))
    assert wall["published"].to_list() == [18887.0]
    hog = ref.filter((pl.col("mode") == "baseline") & (pl.col("metric") == "hog_iterations"))
    assert hog["published"].to_list() == [None]


# ---------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------


def _cell(summary, mode, folio, channels=None, threads=None):
    f = (pl.col("mode") == mode) & (pl.col("folio_size") == folio)
    f &= pl.col("channels").is_null() if channels is None else pl.col("channels") == channels
    f &= pl.col("threads").is_null() if threads is None else pl.col("threads") == threads
    rows = summary.filter(f)
    assert rows.height == 1
    return rows.row(0, named=True)


def test_throughput_summary_statistics_and_published_values(tp_runs):
    ref = pl.DataFrame(
        {
            "mode": ["baseline", "baseline", "dma"],
            "channels": [None, None, 4],
            "folio_bytes": [4096, 2 << 20, 2 << 20],
            "published_gbps": [5.0, 10.0, 30.0],
            "published_sd_gbps": [0.5, 1.0, 2.0],
        },
        schema_overrides={"channels": pl.Int32},
    )
    s = throughput_study.summarise_throughput(tp_runs, ref)
    THROUGHPUT_SUMMARY.conform(s)  # the summary has the summary schema
    b4 = _cell(s, "baseline", "4K")
    assert (b4["n"], b4["mean_gbps"], b4["sd_gbps"]) == (3, 4.0, 1.0)
    assert b4["published_gbps"] == 5.0 and b4["rel_error"] == pytest.approx(-0.2)
    assert b4["speedup"] == pytest.approx(1.0)
    b2 = _cell(s, "baseline", "2M")
    assert b2["sd_gbps"] == pytest.approx(math.sqrt(2.0))
    d2 = _cell(s, "dma", "2M", channels=4)
    assert d2["mean_gbps"] == 27.0 and d2["rel_error"] == pytest.approx(27 / 30 - 1)
    assert d2["speedup"] == pytest.approx(27 / 11)
    assert d2["published_speedup"] == pytest.approx(3.0)
    d4 = _cell(s, "dma", "4K", channels=4)
    assert d4["sd_gbps"] == 0.0 and d4["published_gbps"] is None and d4["rel_error"] is None
    assert d4["speedup"] == pytest.approx(0.5)
    mt = _cell(s, "mt", "2M", threads=4)
    assert mt["n"] == 1 and mt["sd_gbps"] is None and mt["published_gbps"] is None


def test_throughput_mape():
    s = throughput_study.summarise_throughput(
        THROUGHPUT_RUNS.frame([tp_row("baseline", "4K", 4.0), tp_row("baseline", "2M", 12.0)]),
        pl.DataFrame(
            {
                "mode": ["baseline", "baseline"],
                "channels": [None, None],
                "folio_bytes": [4096, 2 << 20],
                "published_gbps": [5.0, 10.0],
                "published_sd_gbps": [0.1, 0.1],
            },
            schema_overrides={"channels": pl.Int32},
        ),
    )
    mape, cells = throughput_study.throughput_mape(s)
    assert cells == 2 and mape == pytest.approx((20.0 + 20.0) / 2)


def test_compaction_summary_long_format_and_errors():
    runs = COMPACTION_RUNS.frame(
        [
            cp_row("baseline", 100.0, pages=1000, sys=99.0, idle=1.0, seed=0),
            cp_row("baseline", 110.0, pages=1200, sys=97.0, idle=3.0, seed=1),
            cp_row("busy-dma", 300.0, hog=2e9, user=50.0, sys=45.0, idle=5.0),
        ]
    )
    ref = pl.DataFrame(
        {
            "mode": ["baseline", "baseline", "baseline", "busy-dma", "baseline"],
            "metric": ["wall_ms", "sys_pct", "user_pct", "hog_iterations", "hog_iterations"],
            "published": [100.0, 99.0, 0.0, 1e9, None],
        }
    )
    s = compaction_study.summarise_compaction(runs, ref)
    COMPACTION_SUMMARY.conform(s)
    get = {(r["mode"], r["metric"]): r for r in s.iter_rows(named=True)}
    wall = get[("baseline", "wall_ms")]
    assert (wall["n"], wall["mean"], wall["published"]) == (2, 105.0, 100.0)
    assert wall["sd"] == pytest.approx(math.sqrt(50.0))
    assert wall["rel_error"] == pytest.approx(0.05) and wall["abs_error"] == pytest.approx(5.0)
    sys_ = get[("baseline", "sys_pct")]
    assert sys_["mean"] == 98.0 and sys_["abs_error"] == pytest.approx(-1.0)  # points
    user = get[("baseline", "user_pct")]
    assert user["published"] == 0.0 and user["rel_error"] is None  # no division by zero
    hog_idle = get[("baseline", "hog_iterations")]
    assert hog_idle["n"] == 0 and hog_idle["mean"] is None
    hog = get[("busy-dma", "hog_iterations")]
    assert hog["rel_error"] == pytest.approx(1.0)
    # published order of modes, then of metrics
    assert s["mode"].to_list()[0] == "baseline" and s["mode"].to_list()[-1] == "busy-dma"
    assert s.filter(pl.col("mode") == "baseline")["metric"].to_list()[:2] == [
        "wall_ms",
        "pages_migrated",
    ]


# ---------------------------------------------------------------------------------------------
# Markdown tables
# ---------------------------------------------------------------------------------------------


def _md_rows(md: str) -> list[list[str]]:
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def test_throughput_table_published_layout(tp_runs):
    s = throughput_study.summarise_throughput(tp_runs)
    md = throughput_study.throughput_table(s).markdown()
    rows = _md_rows(md)
    assert rows[0] == ["rows \\ folio size", "4K", "2M"]  # folio sizes in size order
    assert len({len(r) for r in rows}) == 1  # every row has every column
    body = {r[0]: r[1:] for r in rows[2:]}
    assert list(body) == ["baseline", "DMA 4 ch", "MT 4 thr"]
    assert body["baseline"] == ["4.00±1.00", "11.00±1.41"]
    assert body["DMA 4 ch"] == ["2.00±0.00", "27.00±1.41"]
    assert body["MT 4 thr"] == ["–", "20.00"]  # not run at 4K; one trial: no sd


def test_throughput_table_with_published_values(tp_runs):
    ref = throughput_study.load_reference_throughput(REF_TP)
    s = throughput_study.summarise_throughput(tp_runs, ref)
    md = throughput_study.throughput_table(s, with_published=True).markdown()
    body = {r[0]: r[1:] for r in _md_rows(md)[2:]}
    # baseline 4K: simulated 4.00±1.00, published 3.55±0.19, error 4/3.55 - 1 = +12.7%
    assert body["baseline"][0] == "4.00±1.00 / 3.55±0.19 (+12.7%)"
    # DMA 4 ch 2M: 27 / 27.16 - 1 = -0.6%
    assert body["DMA 4 ch"][1] == "27.00±1.41 / 27.16±0.20 (-0.6%)"
    assert "MAPE over 4 cells" in md


def test_compaction_table_layout():
    runs = COMPACTION_RUNS.frame(
        [
            cp_row("dma", 18000.0, pages=4_600_000, sys=76.0, idle=24.0),
            cp_row("baseline", 16000.0, pages=4_500_000, sys=99.5, idle=0.5),
        ]
    )
    s = compaction_study.summarise_compaction(
        runs, compaction_study.load_reference_compaction(REF_CP)
    )
    rows = _md_rows(compaction_study.compaction_table(s).markdown())
    assert rows[0] == [
        "mode",
        "wall (ms)",
        "pages migrated",
        "DMA copies",
        "hog iterations",
        "user %",
        "sys %",
        "idle %",
    ]
    assert [r[0] for r in rows[2:]] == ["baseline", "dma"]  # published order
    assert rows[2][1:3] == ["16,000", "4,500,000"] and rows[2][4] == "–"
    vs = {
        r[0]: r[1:]
        for r in _md_rows(compaction_study.compaction_table(s, with_published=True).markdown())[2:]
    }
    # 16000 / 16708 - 1 = -4.2%; sys 99.50 - 99.40 = +0.10 points
    assert vs["baseline"][0] == "16,000 / 16,708 (-4.2%)"
    assert vs["baseline"][5] == "99.50 / 99.40 (+0.10 pt)"


def test_compaction_per_page_table_by_hand():
    runs = COMPACTION_RUNS.frame(
        [
            cp_row("baseline", 16000.0, pages=4_000_000, sys=100.0, idle=0.0),
            cp_row("dma", 20000.0, pages=4_000_000, sys=75.0, idle=25.0),
            cp_row("busy-baseline", 32000.0, pages=4_000_000, hog=1, user=50.0, sys=50.0, idle=0.0),
            cp_row("busy-dma", 34000.0, pages=4_000_000, hog=1, user=55.0, sys=45.0, idle=0.0),
        ]
    )  # fmt: skip
    s = compaction_study.summarise_compaction(
        runs, compaction_study.load_reference_compaction(REF_CP)
    )
    t = compaction_study.compaction_per_page_table(s)
    rows = {r[0]: r[1:] for r in _md_rows(t.markdown())[2:]}
    assert list(rows) == ["baseline", "dma", "busy-baseline", "busy-dma"]
    # baseline: 16000 ms over 4e6 pages = 4.000 us, published 16708 ms / 4563506 = 3.661 us
    assert rows["baseline"][0] == "4.000 / 3.661"
    # dma: 5.000 us a page, 75% sys = 3.750, 25% idle = 1.250
    assert [c.split(" / ")[0] for c in rows["dma"]] == ["5.000", "3.750", "1.250", "0.000"]
    # busy-dma: 8.5 us, 45% sys = 3.825, 55% user = 4.675
    assert [c.split(" / ")[0] for c in rows["busy-dma"]] == ["8.500", "3.825", "0.000", "4.675"]
    # saved: idle 4.000 - 3.750, busy 4.000 - 3.825; published 0.508 and 0.565
    assert "idle 0.250, busy 0.175 us (published 0.508 and 0.565)" in t.notes[-1]
    # one mode alone: its row, no saving
    one = compaction_study.summarise_compaction(runs.filter(pl.col("mode") == "dma"))
    t1 = compaction_study.compaction_per_page_table(one)
    assert [r[0] for r in t1.rows] == ["dma"] and t1.rows[0][1] == "5.000"
    assert not any("saved" in n for n in t1.notes)


def test_table_html_is_offline_and_escaped():
    t = tables.Table("A <b> table", ["x", "y"], [["r<1>", "1±2"]], ["note & more"])
    page = tables.table_page("t", [t])
    assert "<b>" not in page.split("<body>")[1] and "&lt;b&gt;" in page
    assert "http://" not in page and "https://" not in page


def test_describe_schemas_documents_every_column():
    doc = tables.describe_schemas(studies.schemas().values())
    for schema in studies.schemas().values():
        assert f"### {schema.name}" in doc
        for c in schema.columns:
            assert f"| {c.name} |" in doc


def test_published_values_only_for_the_published_setup():
    ref_tp = throughput_study.load_reference_throughput(REF_TP)
    small = dict(tp_row("baseline", "4K", 3.0), total_bytes=64 << 20)
    s = throughput_study.summarise_throughput(THROUGHPUT_RUNS.frame([small]), ref_tp)
    assert s["published_gbps"].to_list() == [None]  # 64 MB moved: not the published 1 GiB run
    full = throughput_study.summarise_throughput(
        THROUGHPUT_RUNS.frame([tp_row("baseline", "4K", 3.0)]), ref_tp
    )
    assert full["published_gbps"].to_list() == [3.55]
    ref_cp = compaction_study.load_reference_compaction(REF_CP)
    tiny = dict(cp_row("baseline", 10.0), allocations=256)
    c = compaction_study.summarise_compaction(COMPACTION_RUNS.frame([tiny]), ref_cp)
    assert c["published"].null_count() == c.height
    c = compaction_study.summarise_compaction(
        COMPACTION_RUNS.frame([cp_row("baseline", 10.0)]), ref_cp
    )
    assert c.filter(pl.col("metric") == "wall_ms")["published"].to_list() == [16708.0]


def test_results_readme_documents_the_current_schemas():
    readme = (ROOT / "results" / "README.md").read_text()
    assert tables.describe_schemas(studies.schemas().values()).strip() in readme, (
        "results/README.md is out of date: paste migsim.output.schema.describe_schemas("
        "migsim.studies.schemas().values()) into it"
    )


def test_pandas_is_hidden_only_in_the_thread_inside_the_block():
    """output.arrow._pandas_unseen hides pandas from its own thread (nested blocks too) and
    from no other: a thread importing pandas meanwhile finds it."""
    import threading

    from migsim.output import arrow

    def hidden() -> bool:
        try:
            arrow._NO_PANDAS.find_spec("pandas")
        except ModuleNotFoundError:
            return True
        return False

    saved = sys.modules.pop("pandas", None)  # the block hides nothing once pandas is imported
    try:
        inside, other = threading.Event(), []
        with arrow._pandas_unseen():
            with arrow._pandas_unseen():
                assert hidden()
            assert hidden()
            t = threading.Thread(target=lambda: (inside.wait(), other.append(hidden())))
            t.start()
            inside.set()
            t.join()
        assert other == [False]
        assert not hidden()
        assert arrow._NO_PANDAS.find_spec("numpy") is None
    finally:
        if saved is not None:
            sys.modules["pandas"] = saved
