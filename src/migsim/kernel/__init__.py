"""State and control flow named after mm/: zone and buddy allocator, fragmentation, migrate_pages(), compact_zone(), vmstat counters."""
