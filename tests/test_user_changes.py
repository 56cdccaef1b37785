"""What a script changes after construction reaches every part of the engine (or is refused), as with
OpenMM's Simulation: the box and parameters on ``context``, the integrator's settings on ``integrator``.

Deterministic comparisons on the Reference platform: a change made before the first step gives the
trajectory of a simulation built with that setting, bit for bit; a resumed run equals the uninterrupted one.
"""

import io

import numpy as np
import openmm
import pytest

import npt
from openmm_lsd import LeapfrogLangevinIntegrator, SpeculativeSimulation
from systems import DRAFT_CHANGES, periodicChain, periodicStart, startPositions, startVelocities, topology, toy

TARGET = dict(constraint=True, cmm=3)
DRAFT = dict(DRAFT_CHANGES, constraint=True, cmm=3)


def chain(scheme="LangevinMiddle", temperature=300.0, friction=5.0, dt=0.004, correction="offset", **kw):
    sim = SpeculativeSimulation(topology(3), toy(**TARGET), toy(**DRAFT), temperature, friction, dt, window=4,
                                scheme=scheme, draftCorrection=correction, correctionLag=2, platform="Reference",
                                seed=5, **kw)
    sim.context.setPositions(startPositions())
    sim.context.setVelocities(startVelocities())
    return sim


def periodic(window=4):
    sim = SpeculativeSimulation(topology(4), periodicChain(), periodicChain(epsilon=0.6, sigma=0.21, bond=1000.0),
                                300, 5.0, 0.004, window=window, correctionLag=2, platform="Reference", seed=3)
    x, v = periodicStart()
    sim.context.setPositions(x)
    sim.context.setVelocities(v)
    return sim


def resumed(sim, other):
    """``other`` after loading a checkpoint of ``sim`` taken now."""
    buffer = io.BytesIO()
    sim.saveCheckpoint(buffer)
    buffer.seek(0)
    other.loadCheckpoint(buffer)
    return other


def state(sim):
    s = sim.context.getState(getPositions=True, getVelocities=True)
    return np.concatenate([s.getPositions(asNumpy=True)._value, s.getVelocities(asNumpy=True)._value])


# ---- the box on the Context -----------------------------------------------------------------------------


def test_a_box_set_on_the_context_is_the_run_s_box_and_survives_a_checkpoint():
    """Without a barostat too: the draft, the replay and the target all use the box set on the Context, and
    a checkpoint taken mid-run resumes to the uninterrupted trajectory (the draft kept that box)."""
    whole = periodic()
    whole.context.setPeriodicBoxVectors(*(np.eye(3) * 0.95))
    whole.step(30)
    plain = periodic()
    plain.step(30)
    assert not np.array_equal(state(whole), state(plain))  # the box changes the trajectory
    first = periodic()
    first.context.setPeriodicBoxVectors(*(np.eye(3) * 0.95))
    first.step(11)
    second = resumed(first, periodic(window=3))
    assert second.context.getState().getPeriodicBoxVolume()._value == pytest.approx(0.95**3, rel=1e-12)
    second.step(19)
    np.testing.assert_array_equal(state(second), state(whole))


def test_a_parameter_set_on_the_context_survives_a_checkpoint():
    """A target global parameter set on the Context after construction: the resumed run is the uninterrupted one
    (the checkpoint's State carries the parameters), and the parameter does change the trajectory."""
    whole = periodic()
    whole.context.setParameter("eps", 1.6)
    whole.step(30)
    plain = periodic()
    plain.step(30)
    assert not np.array_equal(state(whole), state(plain))
    first = periodic()
    first.context.setParameter("eps", 1.6)
    first.step(11)
    second = resumed(first, periodic(window=3))
    assert second.context.getParameter("eps") == 1.6
    second.step(19)
    np.testing.assert_array_equal(state(second), state(whole))


def test_a_new_box_between_steps_starts_a_new_history():
    """The box is part of the state the engine compares: setting another one mid-run is noticed."""
    sim = periodic()
    sim.step(5)
    sim.context.setPeriodicBoxVectors(*(np.eye(3) * 0.95))
    sim.step(5)
    np.testing.assert_allclose(sim._controller.box, np.eye(3) * 0.95)
    np.testing.assert_allclose(sim._draftContext.getState().getPeriodicBoxVectors(asNumpy=True)._value,
                               np.eye(3) * 0.95)


# ---- the integrator's settings ------------------------------------------------------------------------------

SETTERS = [("setTemperature", 600.0, dict(temperature=600.0)), ("setFriction", 1.0, dict(friction=1.0)),
           ("setStepSize", 0.002, dict(dt=0.002)), ("setConstraintTolerance", 1e-8, {})]


@pytest.mark.parametrize("scheme", ["LangevinMiddle", "leapfrog"])
@pytest.mark.parametrize("setter, value, built", SETTERS, ids=[s[0] for s in SETTERS])
def test_integrator_setters_are_followed(scheme, setter, value, built):
    """sim.integrator.setX(v) before stepping gives the trajectory of a simulation built with v, bit for bit
    (the tolerance: a constraint converged further, so not bitwise equal to the default's)."""
    changed = chain(scheme)
    getattr(changed.integrator, setter)(value)
    changed.step(30)
    if built:
        reference = chain(scheme, **built)
        reference.step(30)
        np.testing.assert_array_equal(state(changed), state(reference))
    else:
        default = chain(scheme)
        default.step(30)
        assert changed._controller.draftIntegrator.getConstraintTolerance() == value
        replay = changed._controller.replayIntegrator
        assert all(replay.getIntegrator(k).getConstraintTolerance() == value for k in range(2))
        assert not np.array_equal(state(changed), state(default))
        np.testing.assert_allclose(state(changed)[:3], state(default)[:3], atol=1e-3)  # positions: close


def test_a_setting_changed_mid_run_restarts_from_the_current_state():
    """After step(10), setTemperature(600): the rest is the run of a 600 K simulation from that state (a new
    accepted history, as a state set by the user), and time advances by the new step size."""
    sim = chain()
    sim.step(10)
    saved = io.StringIO()
    sim.saveState(saved)
    sim.integrator.setTemperature(600)
    sim.integrator.setStepSize(0.002)
    sim.step(10)
    other = chain(temperature=600, dt=0.002)
    other.loadState(io.StringIO(saved.getvalue()))
    other.step(10)
    np.testing.assert_array_equal(state(sim), state(other))
    assert sim.context.getState().getTime()._value == pytest.approx(10 * 0.004 + 10 * 0.002)


def test_the_heat_bath_follows_set_temperature():
    """Mean kinetic temperature over 12,000 steps after setTemperature(600) (3 particles, 8 degrees of freedom
    with the constraint and CMMotionRemover; fixed seed): within 10% of 600 K, far from the 300 K it was."""
    sim = chain(correction="none")
    sim.integrator.setTemperature(600)
    dof = 3 * 3 - 1 - 3
    temperatures = []
    for _ in range(1200):
        sim.step(10)
        kinetic = sim.context.getState(getEnergy=True).getKineticEnergy()._value
        temperatures.append(2 * kinetic / (dof * 0.00831446261815324))
    assert 540 < np.mean(temperatures) < 660, np.mean(temperatures)


def test_checkpoint_restores_the_settings_in_force():
    """A checkpoint taken after setTemperature/setFriction restores them on the loading simulation's integrator
    and resumes to the uninterrupted trajectory."""
    whole = chain()
    whole.integrator.setTemperature(450)
    whole.integrator.setFriction(2.0)
    whole.step(25)
    first = chain()
    first.integrator.setTemperature(450)
    first.integrator.setFriction(2.0)
    first.step(9)
    second = resumed(first, chain())
    assert second.integrator.getTemperature()._value == 450
    assert second.integrator.getFriction()._value == 2.0
    second.step(16)
    np.testing.assert_array_equal(state(second), state(whole))


def test_leapfrog_integrator_setters_match_a_new_integrator():
    """The shipped serial leapfrog integrator: setters give the integrator built with those values."""
    changed = LeapfrogLangevinIntegrator(300, 5.0, 0.004)
    changed.setTemperature(600)
    changed.setFriction(2.0)
    changed.setStepSize(0.002)
    built = LeapfrogLangevinIntegrator(600, 2.0, 0.002)
    for name in ("lsd_a", "lsd_b", "lsd_kT", "lsd_gamma"):
        assert changed.getGlobalVariableByName(name) == built.getGlobalVariableByName(name)
    assert changed.getStepSize() == built.getStepSize()
    assert changed.getTemperature() == built.getTemperature() and changed.getFriction() == built.getFriction()


def test_a_zero_friction_set_on_the_integrator_is_refused():
    sim = chain()
    sim.integrator.setFriction(0.0)
    with pytest.raises(ValueError, match="friction was set to 0.0; speculative dynamics needs it > 0"):
        sim.step(1)


# ---- the force-only draft Context and checkpoints ----------------------------------------------------------


def test_the_draft_force_context_gets_the_platform_properties():
    platform = openmm.Platform.getPlatformByName("CPU")
    sim = SpeculativeSimulation(topology(3), toy(**TARGET), toy(**DRAFT), 300, 5.0, 0.004, draftCorrection="refit",
                                correctionLag=2, platform=platform, platformProperties={"Threads": "1"}, seed=5)
    sim.context.setPositions(startPositions())
    sim.context.setVelocities(startVelocities())
    sim.step(3)  # the refit's in-process F_d comes from the force-only draft Context
    context = sim._controller._draftForceContext
    assert context is not None
    assert platform.getPropertyValue(context, "Threads") == "1"


def test_a_checkpoint_changes_nothing_in_the_running_state():
    """Saving with drafted steps pending (whose F_d the checkpoint computes) leaves the records as they were."""
    sim = chain(correction="refit")
    sim.step(6)
    controller = sim._controller
    for _ in range(2):  # drafted ahead, as when a fault stopped the run mid-round
        controller.draft()
    records = controller.ahead.records
    before = {j: (r.fd, r.positions) for j, r in records.items()}
    assert before and all(fd is None for fd, _ in before.values())
    sim.saveCheckpoint(io.BytesIO())
    assert {j: r.fd for j, r in records.items()} == {j: fd for j, (fd, _) in before.items()}


# ---- the barostat: OpenMM's step count, kept in every checkpoint -----------------------------------------


def npt_sim(frequency=4):
    target, draft = npt.systems(frequency=frequency)
    sim = SpeculativeSimulation(npt.topology(), target, draft, npt.TEMPERATURE, npt.FRICTION, npt.DT, window=4,
                                correctionLag=2, platform="Reference", seed=9)
    x, v = npt.start()
    sim.context.setPositions(x)
    sim.context.setVelocities(v)
    return sim


def test_barostat_counts_the_steps_taken_as_openmm_does():
    """From step 5 with frequency 4, the first move is before the 4th step taken (OpenMM's count), not before
    step 8; the count survives a checkpoint."""
    sim = npt_sim()
    sim.currentStep = 5
    sim.step(3)
    assert sim.statistics.volumeMoves == 0
    sim.step(1)
    assert sim.statistics.volumeMoves == 1
    sim.step(2)
    other = resumed(sim, npt_sim())
    other.step(1)
    assert other.statistics.volumeMoves == 1
    other.step(1)  # the 8th step taken
    assert other.statistics.volumeMoves == 2


def test_a_fresh_checkpoint_keeps_the_barostat_s_adaptation():
    """A checkpoint taken right after the user set a new state (a 'fresh' one) still holds the adaptive volume
    step and counters: loading it, they are those of the run."""
    sim = npt_sim(frequency=1)
    sim.step(25)
    adapted = sim._volumeMoves.state()
    assert adapted["volumeScale"] != [sim._volumeMoves.initialVolumeScale]
    x, v = npt.start()
    sim.context.setPositions(x)  # not the accepted state any more: the checkpoint is fresh
    other = resumed(sim, npt_sim(frequency=1))
    assert other._volumeMoves.state() == adapted
