"""The kernel developers' formats: tracepoint lines (include/trace/events/) and mmtests-style reports."""
