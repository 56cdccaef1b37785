"""Bad input, fuzzed with hypothesis: each gets a specific error before any work or output.

Command-line cases run ``openmm_lsd.cli.main`` in-process: argument checks come
before any system is built, so a refused argument costs microseconds.
"""

import io
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openmm_lsd import SpeculativeSimulation
from openmm_lsd.checkpoint import CheckpointError
from systems import startPositions, startVelocities, toy

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def refused(argv, capsys):
    from openmm_lsd import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code not in (0, None)
    return str(stop.value.code) + capsys.readouterr().err


bad_positive = st.one_of(st.floats(max_value=0.0, allow_nan=False), st.just(math.nan), st.just(-math.inf))


@FAST
@given(option=st.sampled_from(["--timestep", "--friction", "--temperature"]), value=bad_positive)
def test_cli_refuses_non_positive_physics(tmp_path_factory, capsys, option, value):
    out = tmp_path_factory.mktemp("o")
    message = refused(["run", "--output", str(out / "run"), f"{option}={value!r}"], capsys)
    assert f"{option} must be a positive number" in message
    assert not (out / "run").exists()


@FAST
@given(window=st.one_of(st.integers(max_value=0), st.integers(min_value=1001, max_value=10**12)))
def test_cli_refuses_windows_out_of_range(tmp_path_factory, capsys, window):
    out = tmp_path_factory.mktemp("o")
    assert "--window must be between 1 and 1000" in refused(["run", "--output", str(out / "r"),
                                                             f"--window={window}"], capsys)
    assert not (out / "r").exists()


@FAST
@given(text=st.text(min_size=1, max_size=8).filter(lambda t: not t.strip().lstrip("+-").isdigit()))
def test_cli_refuses_non_integer_steps(capsys, text):
    message = refused(["run", f"--steps={text}"], capsys)
    assert "--steps" in message


@FAST
@given(window=st.one_of(st.integers(max_value=0), st.integers(min_value=100_001, max_value=10**12),
                        st.floats(allow_nan=True), st.text(max_size=3), st.booleans()))
def test_api_refuses_bad_windows(window):
    with pytest.raises((ValueError, TypeError), match="window"):
        SpeculativeSimulation(None, toy(), toy(shift=0.1), 300, 1.0, 0.002, window=window, platform="Reference")


@FAST
@given(seed=st.one_of(st.integers(max_value=-1), st.floats(), st.text(max_size=3), st.booleans()))
def test_api_refuses_bad_seeds(seed):
    with pytest.raises((ValueError, TypeError), match="seed"):
        SpeculativeSimulation(None, toy(), toy(shift=0.1), 300, 1.0, 0.002, seed=seed, platform="Reference")


@pytest.fixture(scope="module")
def checkpointBytes():
    sim = SpeculativeSimulation(None, toy(), toy(shift=0.1), 300, 1.0, 0.002, window=4, platform="Reference",
                                seed=1)
    sim.context.setPositions(startPositions())
    sim.context.setVelocities(startVelocities())
    sim.step(6)
    buffer = io.BytesIO()
    sim.saveCheckpoint(buffer)
    return buffer.getvalue()


@FAST
@given(data=st.data())
def test_any_damaged_checkpoint_is_refused(checkpointBytes, data):
    """Flip one byte anywhere, or cut the file anywhere: a CheckpointError, never a silent load."""
    raw = bytearray(checkpointBytes)
    if data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    else:
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    sim = SpeculativeSimulation(None, toy(), toy(shift=0.1), 300, 1.0, 0.002, window=4, platform="Reference",
                                seed=1)
    sim.context.setPositions(startPositions())
    before = np.array(sim.context.getState(getPositions=True).getPositions(asNumpy=True)._value)
    try:
        sim.loadCheckpoint(io.BytesIO(bytes(raw)))
    except CheckpointError:
        after = np.array(sim.context.getState(getPositions=True).getPositions(asNumpy=True)._value)
        np.testing.assert_array_equal(before, after)
        return
    # Only a flip in bytes that nothing reads (zip comments, padding) may load, and then it loads the same state.
    assert sim.currentStep == 6
