"""Where the repository's data files are, as plain strings (os.path): the platform files
(config/platforms) and the published tables (config/reference). The command line registers
its defaults from here, so that `migsim <command> --help` imports neither pathlib nor the
cost model for them."""

from __future__ import annotations

import os

# src/migsim/paths.py -> the repository (symlinks resolved, as Path.resolve() does)
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
PLATFORM_DIR = os.path.join(_ROOT, "config", "platforms")
REFERENCE_DIR = os.path.join(_ROOT, "config", "reference")
DEFAULT_PLATFORM_FILE = os.path.join(PLATFORM_DIR, "epyc-zen3-ptdma.yaml")
