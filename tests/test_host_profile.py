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
