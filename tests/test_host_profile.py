"""migsim.host.profile's perf-script parser: innermost named group wins; other tasks and user
samples are not the writer's kernel CPU."""

import numpy as np

from migsim.host.profile import parse_script

SCRIPT = """sh 123 [000] 1.0: cpu-clock:
\tffffffff81000001 copy_mc_enhanced_fast_string+0x10
\tffffffff81000002 folio_mc_copy+0x20
\tffffffff81000003 migrate_pages_batch+0x30

sh 123 [000] 1.1: cpu-clock:
\tffffffff81000004 _raw_spin_unlock_irqrestore+0x1
\tffffffff81000005 isolate_migratepages_block+0x2
\tffffffff81000006 compact_zone+0x3

sh 123 [000] 1.2: cpu-clock:
\t7f0000000001 [unknown]

perf 9 [001] 1.3: cpu-clock:
\tffffffff81000001 copy_mc_enhanced_fast_string+0x10
"""


def test_parse_script_groups_by_innermost_named_function() -> None:
    groups, selfs, kernel, total = parse_script(SCRIPT)
    assert (kernel, total) == (2, 3)
    assert groups == {"copy": 1, "isolate_migratepages": 1}
    assert selfs == {"copy_mc_enhanced_fast_string": 1, "_raw_spin_unlock_irqrestore": 1}


DIRECT_SCRIPT = """python 7 [000] 2.0: cpu-clock:
\tffffffff81000001 copy_mc_enhanced_fast_string+0x10
\tffffffff81000003 migrate_pages_batch+0x30
\tffffffff81000007 __alloc_pages_direct_compact+0x1

python 7 [000] 2.1: cpu-clock:
\tffffffff81000008 clear_page_erms+0x1
\tffffffff81000009 do_huge_pmd_anonymous_page+0x2

sh 123 [000] 2.2: cpu-clock:
\tffffffff81000001 copy_mc_enhanced_fast_string+0x10
\tffffffff81000007 __alloc_pages_direct_compact+0x1
"""


def test_parse_script_counts_only_the_named_task_within_direct_compaction() -> None:
    from migsim.host.profile import DIRECT

    groups, selfs, kernel, total = parse_script(DIRECT_SCRIPT, "python", DIRECT)
    # the THP fault's zeroing is not compaction; the sh sample is another task
    assert (kernel, total) == (1, 1)
    assert groups == {"copy": 1}


def test_run_refuses_a_bad_layout_or_trigger_before_any_work() -> None:
    import pytest

    from migsim.host.profile import run

    with pytest.raises(ValueError, match="layout: must be one of"):
        run("2G", 0.5, "even", 1, layout="random")
    with pytest.raises(ValueError, match="layout: shuffled frees the odd pfns"):
        run("2G", 0.25, "even", 1, layout="shuffled")
    with pytest.raises(ValueError, match="trigger: must be one of"):
        run("2G", 0.5, "even", 1, trigger="kcompactd")


def test_run_refuses_a_bad_period_ballast_or_size_before_any_work() -> None:
    import pytest

    from migsim.host.profile import run

    with pytest.raises(ValueError, match="period: must be 0 .no perf. or 1000 to 1000000 ns"):
        run("2G", 0.5, "even", 1, period_ns=10)
    with pytest.raises(ValueError, match="period: 0 .unsampled. only with --trigger compact_mem"):
        run("2G", 0.5, "even", 1, trigger="thp-fault", period_ns=0)
    with pytest.raises(ValueError, match="ballast: only with --trigger compact_memory"):
        run("2G", 0.5, "even", 1, trigger="thp-fault", ballast=True)
    with pytest.raises(ValueError, match="layout: sequential frees the odd pfns"):
        run("2G", 0.5, "random", 1, layout="sequential")
    with pytest.raises(ValueError, match="size: must be 2M to MemAvailable less 4 GiB"):
        run("1024G", 0.5, "even", 1)


def test_pfn_next_frac_counts_consecutive_frames_of_present_pages() -> None:
    import numpy as np

    from migsim.host.profile import pfn_next_frac

    assert pfn_next_frac(np.arange(100, 110)) == 1.0
    # 9 neighbour pairs: 100->101 and 102->103 consecutive, 101->200 not, ...
    pfns = np.array([100, 101, 200, 201, 5, -1, 7, 8])
    # present pairs: (100,101) (101,200) (200,201) (201,5) (7,8): 3 of 5 consecutive
    assert pfn_next_frac(pfns) == 3 / 5
    assert pfn_next_frac(np.array([-1, -1])) == 0.0


def test_scale_table_sums_the_parts_of_each_profile(tmp_path) -> None:
    import json

    import pytest

    from migsim.host.profile import PARTS, read_profile, scale_table

    meta = {
        "size": "4G",
        "layout": "sequential",
        "trigger": "compact_memory",
        "pfn_next_frac": 0.9,
        "period_ns": 20000,
        "vmstat": {
            "pages_direct": 1000,
            "compact_migrate_scanned": 3000,
            "compact_free_scanned": 5000,
        },
    }
    text = "\n".join(
        [
            "# migsim.host.profile --size 4G",
            "# meta " + json.dumps(meta),
            "kind,name,samples,us_per_page",
            "total,kernel,100,10.0",
            "group,copy,30,3.0",
            "group,rmap_unmap,20,2.0",
            "group,migrate_pages_other,10,1.0",
            "group,isolate_migratepages,15,1.5",
            "group,compaction_alloc,5,0.5",
            "group,other,20,2.0",
            "self,copy_mc_enhanced_fast_string,30,3.0",
        ]
    )
    (tmp_path / "a.csv").write_text(text + "\n")
    m, g = read_profile(tmp_path / "a.csv")
    assert m["size"] == "4G" and g["total"] == 10.0 and "copy_mc_enhanced_fast_string" not in g
    row = scale_table([tmp_path / "a.csv"]).row(0, named=True)
    assert row["size_gib"] == 4.0
    assert row["migrate_scanned_per_page"] == 3.0 and row["free_scanned_per_page"] == 5.0
    assert row["noncopy_us"] == pytest.approx(7.0)
    assert row["migrate_pages_us"] == pytest.approx(3.0)
    assert row["isolate_migratepages_us"] == 1.5 and row["free_side_us"] == 0.5
    assert row["rest_us"] == 2.0 and row["putback_lru_us"] == 0.0
    # every group is in exactly one part, so the parts add up to the non-copy total
    assert sum(row[f"{p}_us"] for p in PARTS) == pytest.approx(row["noncopy_us"])
    # an unsampled run (--period 0) has the writer's total only
    meta["period_ns"] = 0
    (tmp_path / "b.csv").write_text(
        "\n".join(["# meta " + json.dumps(meta), "kind,name,samples,us_per_page"])
        + "\ntotal,kernel,0,4.0\n"
    )
    row = scale_table([tmp_path / "b.csv"]).row(0, named=True)
    assert row["kernel_us"] == 4.0 and row["noncopy_us"] is None and row["copy_us"] is None
    (tmp_path / "old.csv").write_text("kind,name,samples,us_per_page\ntotal,kernel,1,1.0\n")
    with pytest.raises(ValueError, match="has no '# meta' line"):
        read_profile(tmp_path / "old.csv")


def test_every_group_but_the_copy_is_in_exactly_one_part() -> None:
    from migsim.host.profile import GROUPS, PARTS

    names = [n for part in PARTS.values() for n in part]
    assert len(names) == len(set(names))
    assert set(names) == {g for g, _ in GROUPS if g != "copy"} | {"other"}


def test_size_slope_recovers_a_line_and_its_error() -> None:
    import polars as pl
    import pytest

    from migsim.host.profile import size_slope

    sizes = [0.5, 0.5, 2.0, 2.0, 8.0, 8.0]
    exact = pl.DataFrame({"size_gib": sizes, "y": [3.0 + 0.25 * np.log2(s) for s in sizes]})
    at1, slope, se = size_slope(exact, "y")
    assert (at1, slope) == (pytest.approx(3.0), pytest.approx(0.25)) and se < 1e-9
    # scatter of +-0.1 around a flat line: slope 0, a nonzero error
    noisy = pl.DataFrame({"size_gib": sizes, "y": [2.9, 3.1, 3.1, 2.9, 2.9, 3.1]})
    at1, slope, se = size_slope(noisy, "y")
    assert slope == pytest.approx(0.0, abs=1e-12) and 0.0 < se < 0.05
    with pytest.raises(ValueError, match="y: needs 3 runs and 2 sizes"):
        size_slope(noisy.head(2), "y")
