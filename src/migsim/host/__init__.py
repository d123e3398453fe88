"""This machine: probes of its kernel, snapshots of its physical memory, the host twin, tracefs capture."""
