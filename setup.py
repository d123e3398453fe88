"""Build of the compiled allocation loop (src/migsim/kernel/_compact.c) beside pyproject.toml.

`pip install -e .` builds it; in a checkout, `python setup.py build_ext --inplace`. It needs
only a C compiler and the Python headers (numpy arrays are read through the buffer protocol).
`optional=True`: if it cannot be built the install still succeeds and the Python reference
runs instead, with a one-line warning (migsim.kernel.compaction).
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "src/migsim/kernel/_compact.c"
# the source's hash compiled in (_compact.SOURCE_SHA256): migsim.kernel.compaction compares it
# with the _compact.c beside the module at import, so a build older than its source fails
# loudly instead of running old code
SHA256 = hashlib.sha256((Path(__file__).resolve().parent / SOURCE).read_bytes()).hexdigest()

setup(
    ext_modules=[
        Extension(
            "migsim.kernel._compact",
            [SOURCE],
            define_macros=[("MIGSIM_SOURCE_SHA256", f'"{SHA256}"')],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
