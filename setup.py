"""Build of the compiled allocation loop (src/migsim/kernel/_compact.c) beside pyproject.toml.

`pip install -e .` builds it; in a checkout, `python setup.py build_ext --inplace`. It needs
only a C compiler and the Python headers (numpy arrays are read through the buffer protocol).
`optional=True`: if it cannot be built the install still succeeds and the Python reference
runs instead, with a one-line warning (migsim.kernel.compaction).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "migsim.kernel._compact",
            ["src/migsim/kernel/_compact.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
