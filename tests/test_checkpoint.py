"""Checkpoints: exact resumption, checked loading, faults that stop at the last accepted step."""

import io
import json
import zipfile
from functools import partial

import numpy as np
import openmm
import pytest

from openmm_lsd import SpeculativeSimulation
from openmm_lsd.checkpoint import CheckpointError
from openmm_lsd.corrections import LearnedCorrection
from systems import DRAFT_CHANGES, poisonedForce, startPositions, startVelocities, topology, toy

TARGET = dict(constraint=True, cmm=3)
DRAFT = dict(DRAFT_CHANGES, constraint=True, cmm=3)


#: the learned correction refitted every 3 steps from the second accepted frame on
LEARNED = partial(LearnedCorrection, 2, every=3, minFrames=2)


def make(scheme="LangevinMiddle", correction="offset", window=4, seed=11, target=None, temperature=300):
    correction = correction() if callable(correction) else correction
    sim = SpeculativeSimulation(topology(3), target or toy(**TARGET), toy(**DRAFT), temperature, 5.0, 0.004,
                                window=window, scheme=scheme, draftCorrection=correction, correctionLag=2,
                                platform="Reference", seed=seed)
    sim.context.setPositions(startPositions())
    sim.context.setVelocities(startVelocities())
    return sim


def snapshot(sim):
    state = sim.context.getState(getPositions=True, getVelocities=True)
    return (np.array(state.getPositions(asNumpy=True)._value), np.array(state.getVelocities(asNumpy=True)._value),
            sim.currentStep)


@pytest.mark.parametrize("scheme, correction", [("LangevinMiddle", "offset"), ("LangevinMiddle", "none"),
                                                ("leapfrog", "offset"), ("LangevinMiddle", "refit"),
                                                ("leapfrog", "extrapolate-quadratic"), ("LangevinMiddle", LEARNED)])
@pytest.mark.parametrize("stopAt", [0, 1, 7, 22])
def test_resume_equals_the_uninterrupted_run(scheme, correction, stopAt):
    whole = make(scheme, correction)
    whole.step(40)
    assert 0 < whole.statistics.rejected < 40  # rejections around the interruption points
    first = make(scheme, correction)
    first.step(stopAt)
    buffer = io.BytesIO()
    first.saveCheckpoint(buffer)
    buffer.seek(0)
    second = make(scheme, correction, window=7, seed=999)  # another window; the checkpoint's seed wins
    second.loadCheckpoint(buffer)
    second.step(40 - stopAt)
    a, b = snapshot(whole), snapshot(second)
    assert a[2] == b[2] == 40
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert second.statistics.accepted == whole.statistics.accepted
    assert second.statistics.targetEvaluations >= whole.statistics.steps


def test_step_boundaries_and_checkpoints_do_not_change_the_trajectory(tmp_path):
    whole = make()
    whole.step(30)
    pieces = make()
    for n in (7, 13, 10):
        pieces.step(n)
        pieces.saveCheckpoint(str(tmp_path / "c.lsd"))
    np.testing.assert_array_equal(snapshot(whole)[0], snapshot(pieces)[0])


def test_checkpoint_file_is_atomic_and_pickle_free(tmp_path):
    sim = make()
    sim.step(9)
    path = tmp_path / "c.lsd"
    sim.saveCheckpoint(str(path))
    assert not (tmp_path / "c.lsd.tmp").exists()
    with zipfile.ZipFile(path) as archive:
        assert set(archive.namelist()) == {"manifest.json", "state.xml", "controller.json", "arrays.npz"}
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format"] == "openmm-lsd-checkpoint" and manifest["version"] == 1
    with zipfile.ZipFile(path) as archive:
        state = openmm.XmlSerializer.deserialize(archive.read("state.xml").decode())
    assert state.getStepCount() == 9


def _corrupt(data, member, change):
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in source.namelist():
            content = source.read(name)
            archive.writestr(name, change(content) if name == member else content)
    return out.getvalue()


def test_bad_checkpoints_get_clear_errors_and_change_nothing(tmp_path):
    sim = make()
    sim.step(9)
    buffer = io.BytesIO()
    sim.saveCheckpoint(buffer)
    data = buffer.getvalue()
    other = make()
    before = snapshot(other)
    bumped = json.dumps({**json.loads(zipfile.ZipFile(io.BytesIO(data)).read("manifest.json")), "version": 99})
    cases = [
        (data[: len(data) // 2], "not an openmm-lsd checkpoint or is truncated"),
        (b"hello", "not an openmm-lsd checkpoint"),
        (_corrupt(data, "arrays.npz", lambda c: c[:-10] + b"0123456789"), "checksum of arrays.npz does not match"),
        (_corrupt(data, "manifest.json", lambda c: bumped.encode()), "format version 99"),
    ]
    for content, message in cases:
        with pytest.raises(CheckpointError, match=message):
            other.loadCheckpoint(io.BytesIO(content))
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        other.loadCheckpoint(str(tmp_path / "missing.lsd"))
    leapfrog = make(scheme="leapfrog")
    with pytest.raises(CheckpointError, match="different simulation: scheme"):
        leapfrog.loadCheckpoint(io.BytesIO(data))
    np.testing.assert_array_equal(snapshot(other)[0], before[0])


def test_save_and_load_state_like_simulation(tmp_path):
    sim = make()
    sim.step(5)
    sim.saveState(str(tmp_path / "s.xml"))
    other = make()
    other.loadState(str(tmp_path / "s.xml"))
    np.testing.assert_array_equal(snapshot(sim)[0], snapshot(other)[0])
    assert other.currentStep == 5
    other.step(3)
    assert other.currentStep == 8


def test_non_finite_target_force_stops_at_the_last_accepted_step_and_names_atoms():
    target = toy(**TARGET)
    target.addForce(poisonedForce(3, after=12, atom=2))
    sim = make(target=target)
    with pytest.raises(RuntimeError, match=r"target force is not finite at step \d+ \(atoms \[2"):
        sim.step(40)
    step = sim.currentStep
    assert 0 < step < 40
    positions = snapshot(sim)[0]
    assert np.all(np.isfinite(positions))
    buffer = io.BytesIO()
    sim.saveCheckpoint(buffer)  # the last accepted step can be kept and resumed from
    buffer.seek(0)
    resumed = make()
    resumed.loadCheckpoint(buffer)
    assert resumed.currentStep == step
