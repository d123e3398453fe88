"""migsim: a simulation engine of Linux page migration and compaction."""

# the one place the version is written: pyproject.toml reads it from here (setuptools
# dynamic attr), so `import migsim` needs no importlib.metadata lookup (~20 ms)
__version__ = "0.1.0"

__all__ = ["__version__"]
