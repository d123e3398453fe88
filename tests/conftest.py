"""Shared fixtures: the committed platform, a small deterministic RNG."""

from __future__ import annotations

import numpy as np
import pytest

from migsim.platform import DEFAULT_PLATFORM, load_platform


@pytest.fixture(scope="session")
def platform():
    """The committed, calibrated platform of the published machine."""
    return load_platform(DEFAULT_PLATFORM)


@pytest.fixture(scope="session")
def quiet_platform(platform):
    """The same platform with the trial-to-trial noise off (exact arithmetic checks)."""
    return platform.replace(noise__trial_sd_frac=0.0)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
