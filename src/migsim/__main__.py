"""``python -m migsim``: the `migsim` command."""

import sys

from migsim.cli import main

sys.exit(main())
