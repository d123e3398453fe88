"""Both engines of the allocation loop for a test module: ``from engines import loop_engine,
pytest_generate_tests`` runs each of its tests (but the full-scale ones, marked slow) once with
the Python reference (MIGSIM_ENGINE=python: the code mutation testing mutates) and once with
the compiled loop (MIGSIM_ENGINE=c, migsim.kernel._compact), so a Python mutant and a C bug
both fail it. Where the extension is not built the c runs skip (tests/test_engines.py fails
then where CI=true). A c run of a test that replaces a step on its Compactor or Zone (a
wrapper) runs the Python loop there: every test records in its report's user_properties
which loops ran (``loop_engine_ran``), and the session summary (tests/conftest.py) lists the
c runs that never reached the compiled loop."""

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
    before = dict(compaction.LOOP_RUNS)
    yield name
    ran = {e: compaction.LOOP_RUNS[e] - before[e] for e in compaction.ENGINES}
    request.node.user_properties.append(("loop_engine_ran", {"asked": name, **ran}))


def pytest_generate_tests(metafunc):
    if "loop_engine" in metafunc.fixturenames and not metafunc.definition.get_closest_marker(
        "slow"
    ):
        metafunc.parametrize("loop_engine", ENGINE_PARAMS, indirect=True)
