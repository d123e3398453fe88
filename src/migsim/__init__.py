"""migsim: a simulation engine of Linux page migration and compaction."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("migsim")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
