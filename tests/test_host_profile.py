"""migsim.host.profile's perf-script parser: innermost named group wins; other tasks and user
samples are not the writer's kernel CPU."""

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
