"""Names of the batch-copy series' versions and copier options (no heavy imports: the CLI
parsers use them as choices)."""

RFCS = ("v2", "v3", "v4", "v6")
"""Versions of the batch-copy series whose driver and dispatch code the copiers follow."""

FALLBACKS = ("batch", "folio")
"""After a failed offload: CPU-copy every folio of the batch (v3/v4), or only the failed ones."""

PLACEMENTS = ("spread", "fill-ccd")
"""Where mtcopy queues its copy threads: one CPU per CCD in turn, or fill one CCD first."""
