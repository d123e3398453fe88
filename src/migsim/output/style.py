"""Colours and sizes every figure shares, importable without Altair (a study module names them
at import time; its chart builder imports Altair when it runs)."""

from __future__ import annotations

# Colours: baseline black, then one colour per channel or thread count.
BASELINE_COLOUR = "#000000"
PALETTE = (
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#e45756",
    "#72b7b2",
    "#b279a2",
    "#eeca3b",
    "#9d755d",
    "#ff9da6",
    "#bab0ac",
)
WHATIF_W, WHATIF_H = 260, 200  # px: one panel of a what-if figure
