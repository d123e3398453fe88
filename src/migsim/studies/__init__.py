"""Experiments: the published ones (throughput, compaction) and the what-if studies."""
