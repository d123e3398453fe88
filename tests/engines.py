"""Both engines of the allocation loop for a test module: ``from engines import loop_engine,
pytest_generate_tests`` runs each of its tests (but the full-scale ones, marked slow) once with
the Python reference (MIGSIM_ENGINE=python: the code mutation testing mutates) and once with
the compiled loop (MIGSIM_ENGINE=c, migsim.kernel._compact), so a Python mutant and a C bug
both fail it. Where the extension is not built the c runs skip (tests/test_engines.py fails
then where CI=true)."""

from __future__ import annotations

import pytest

from migsim.kernel import compaction

ENGINE_PARAMS = [
    pytest.param("python", id="python"),
    pytest.param(
        "c",
        id="c",
        marks=pytest.mark.skipif(
            compaction._compact is None, reason="migsim.kernel._compact is not built"
        ),
    ),
]


@pytest.fixture(autouse=True)
def loop_engine(request, monkeypatch):
    """The engine of every Compactor the test builds (MIGSIM_ENGINE); None: the default."""
    name = getattr(request, "param", None)
    if name is not None:
        monkeypatch.setenv(compaction.ENGINE_ENV, name)
    return name


def pytest_generate_tests(metafunc):
    if "loop_engine" in metafunc.fixturenames and not metafunc.definition.get_closest_marker(
        "slow"
    ):
        metafunc.parametrize("loop_engine", ENGINE_PARAMS, indirect=True)
