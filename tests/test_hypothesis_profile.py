"""The property tests take their example counts from the settings profile (tests/conftest.py),
so a thorough run raises them without editing code."""

from __future__ import annotations

import os
import re
from pathlib import Path

from hypothesis import settings

COUNTS = {"ci": 100, "thorough": 2000}


def test_the_profile_in_force_sets_the_counts():
    profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    assert settings().max_examples == COUNTS[profile]
    assert settings().deadline is None


def test_no_test_sets_its_own_count():
    here = Path(__file__).resolve().parent
    fixed = [
        f"{p.name}:{n}"
        for p in sorted(here.glob("test_*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"@settings\(.*max_examples", line)
    ]
    assert fixed == []
