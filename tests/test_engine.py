"""Behaviour of the engine beyond the law: identity, determinism, step boundaries, reporters, long runs."""

import io

import numpy as np
import openmm
import pytest
from openmm import app, unit

from openmm_lsd import SpeculativeSimulation

from systems import alanineDipeptidePair, startPositions, startVelocities, topology, toy, toyPair


def make(target, draft, window=4, seed=11, scheme="LangevinMiddle", correction="none", lag=None, **kw):
    sim = SpeculativeSimulation(topology(target.getNumParticles()), target, draft, 300, 5.0, 0.004, window=window,
                                scheme=scheme, draftCorrection=correction, correctionLag=lag,
                                platform="Reference", seed=seed, **kw)
    n = target.getNumParticles()
    vs = n > 3
    sim.context.setPositions(startPositions(3, vs))
    sim.context.setVelocities(startVelocities(3, vs))
    return sim


def trajectory(sim, steps, chunk=1):
    frames = []
    for _ in range(steps // chunk):
        sim.step(chunk)
        state = sim.context.getState(getPositions=True, getVelocities=True)
        frames.append(np.concatenate([state.getPositions(asNumpy=True)._value,
                                      state.getVelocities(asNumpy=True)._value]))
    return np.array(frames)


@pytest.mark.parametrize("scheme", ["LangevinMiddle", "leapfrog"])
def test_identical_draft_accepts_everything_and_is_the_draft_trajectory(scheme):
    kw = dict(constraint=True, cmm=1, anharmonic=50.0)
    sim = make(toy(**kw), toy(**kw), scheme=scheme, correction="offset", lag=2)
    sim.step(200)
    assert sim.statistics.accepted == 200 and sim.statistics.rejected == 0
    assert sim.statistics.expectedAcceptance == pytest.approx(200, abs=1e-6)


def test_identical_draft_matches_draft_run_alone():
    """With draft == target, LSD's trajectory is the draft integrator's trajectory with the same noise."""
    from openmm_lsd.controller import stepNoise
    from openmm_lsd.integrators import Coefficients, draftIntegrator

    kw = dict(constraint=True, cmm=2)
    sim = make(toy(**kw), toy(**kw), window=3, seed=5)
    lsd = trajectory(sim, 30)
    integrator = draftIntegrator(Coefficients("LangevinMiddle", 300, 5.0, 0.004))
    context = openmm.Context(toy(**kw), integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(startPositions())
    integrator.setPerDofVariableByName("lsd_vd", startVelocities())  # the draft keeps its velocity in vd
    frames = []
    for j in range(1, 31):
        integrator.setPerDofVariableByName("lsd_xi", stepNoise(5, j, 3)[0])
        integrator.step(1)
        state = context.getState(getPositions=True)
        frames.append(np.concatenate([state.getPositions(asNumpy=True)._value,
                                      np.asarray(integrator.getPerDofVariableByName("lsd_vd"))]))
    np.testing.assert_allclose(lsd, np.array(frames), rtol=0, atol=1e-10)


def _mismatched(**kw):
    return toyPair(**kw)


@pytest.mark.parametrize("correction, lag", [("none", None), ("offset", 1), ("offset", 3)])
@pytest.mark.parametrize("scheme", ["LangevinMiddle", "leapfrog"])
def test_same_seed_same_trajectory_for_any_window(scheme, correction, lag):
    """DESIGN.md section 9: window changes speed, never the trajectory (Reference platform: bitwise)."""
    kw = dict(constraint=True, cmm=3)
    runs = {}
    for window in (1, 4, 16):
        target, draft = _mismatched(**kw)
        sim = make(target, draft, window=window, seed=3, scheme=scheme, correction=correction, lag=lag)
        runs[window] = trajectory(sim, 60, chunk=5)
        assert 0 < sim.statistics.rejected < 60
    np.testing.assert_array_equal(runs[1], runs[4])
    np.testing.assert_array_equal(runs[1], runs[16])


def test_step_boundaries_do_not_change_the_trajectory():
    """step(20) == step(7) + step(13): a step boundary or a report never resynchronises the draft."""
    target, draft = _mismatched(constraint=True, cmm=1)
    a = make(target, draft, seed=9, correction="offset", lag=2)
    a.step(20)
    target, draft = _mismatched(constraint=True, cmm=1)
    b = make(target, draft, seed=9, correction="offset", lag=2)
    b.step(7)
    b.context.getState(getEnergy=True)  # what a reporter does between chunks
    b.step(13)
    sa = a.context.getState(getPositions=True, getVelocities=True)
    sb = b.context.getState(getPositions=True, getVelocities=True)
    np.testing.assert_array_equal(sa.getPositions(asNumpy=True)._value, sb.getPositions(asNumpy=True)._value)
    np.testing.assert_array_equal(sa.getVelocities(asNumpy=True)._value, sb.getVelocities(asNumpy=True)._value)
    assert a.currentStep == b.currentStep == 20
    assert abs(b.context.getState().getTime().value_in_unit(unit.picosecond) - 20 * 0.004) < 1e-12


def test_different_seeds_differ():
    target, draft = _mismatched()
    a = trajectory(make(target, draft, seed=1), 5)
    target, draft = _mismatched()
    b = trajectory(make(target, draft, seed=2), 5)
    assert not np.array_equal(a, b)


def test_user_state_change_restarts_history():
    target, draft = _mismatched()
    sim = make(target, draft, seed=4)
    sim.step(5)
    sim.context.setPositions(startPositions())
    sim.context.setVelocities(startVelocities())
    sim.context.setStepCount(0)
    sim.step(5)
    fresh = make(*_mismatched(), seed=4)
    fresh.step(5)
    np.testing.assert_array_equal(sim.context.getState(getPositions=True).getPositions(asNumpy=True)._value,
                                  fresh.context.getState(getPositions=True).getPositions(asNumpy=True)._value)


def test_openmm_reporters_work_unchanged(tmp_path):
    target, draft = _mismatched()
    sim = make(target, draft, seed=4)
    log = io.StringIO()
    sim.reporters.append(app.StateDataReporter(log, 5, step=True, potentialEnergy=True, kineticEnergy=True,
                                               temperature=True))
    sim.reporters.append(app.DCDReporter(str(tmp_path / "t.dcd"), 10))
    sim.step(30)
    lines = log.getvalue().strip().splitlines()
    assert len(lines) == 7 and lines[-1].startswith("30,")
    assert (tmp_path / "t.dcd").stat().st_size > 0


def test_statistics_are_consistent():
    target, draft = _mismatched()
    sim = make(target, draft, window=4, seed=4)
    sim.step(400)
    s = sim.statistics
    assert s.steps == 400 == s.accepted + s.rejected + s.fallbacks
    assert s.draftSteps >= 400 and s.targetEvaluations >= 400
    assert sum(s.attemptsByPosition) == 400
    assert s.acceptanceByPosition[0] == s.acceptsByPosition[0] / s.attemptsByPosition[0]
    # Measured acceptance agrees with the exact per-step probability 2 Phi(-|m|/2) summed over the run
    # (binomial standard error sqrt(400 * 0.25) = 10 steps; 5 standard errors allowed).
    assert abs(s.accepted - s.expectedAcceptance) < 50
    d = s.asDict()
    assert d["stepsPerRound"] == s.stepsPerRound


@pytest.mark.slow
def test_long_run_harmonic_target_anharmonic_draft():
    """LangevinMiddle samples a harmonic well's configurational law exactly: <x^2> = kT/k per DOF.

    One particle, isotropic k = 400 kJ/mol/nm^2 target; draft with a strong quartic term.
    40,000 steps at gamma = 5/ps, dt = 4 fs, sampled every 10 steps; the standard error of the
    mean of x^2 is estimated by batch means (20 batches), and the test asks for agreement within
    4 standard errors.  Negative control: the draft's own chain (accept-always) misses by > 4.
    """
    k = 400.0
    kT = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin) * 300

    def run(control):
        target = toy(1, k=(k, k, k), bond=0)
        draft = toy(1, k=(k, k, k), bond=0, anharmonic=1.5e5)
        sim = SpeculativeSimulation(topology(1), target, draft, 300, 5.0, 0.004, window=8,
                                    draftCorrection="offset", correctionLag=4, platform="Reference", seed=77,
                                    _control=control)
        sim.context.setPositions([[0.0, 0.0, 0.0]])
        x2 = []
        for _ in range(4000):
            sim.step(10)
            x = sim.context.getState(getPositions=True).getPositions(asNumpy=True)._value[0]
            x2.append(np.mean(x**2))
        x2 = np.array(x2)
        batches = x2.reshape(20, -1).mean(axis=1)
        return x2.mean(), batches.std(ddof=1) / np.sqrt(len(batches)), sim.statistics

    mean, err, stats = run(None)
    assert 0.2 < stats.acceptanceRate < 0.95, stats
    assert abs(mean - kT / k) < 4 * err, (mean, kT / k, err)
    mean, err, _ = run("accept_always")
    assert abs(mean - kT / k) > 4 * err, (mean, kT / k, err)


def test_auto_window_changes_speed_never_the_trajectory():
    """window='auto' gives the fixed-window trajectory; it picks 1 in-process (speculation saves nothing
    there) and a long window for a batched verifier when acceptance is high."""
    from openmm_lsd import BatchedVerifier

    target = toy(constraint=True, cmm=3)
    draft = toy(k=(390.0, 255.0, 590.0), shift=0.02, constraint=True, cmm=3)

    def run(window, verifier=None):
        sim = SpeculativeSimulation(topology(3), target, draft, 300, 5.0, 0.004, window=window,
                                    platform="Reference", seed=8, verifier=verifier)
        sim.context.setPositions(startPositions())
        sim.context.setVelocities(startVelocities())
        sim.step(700)
        return sim

    fixed, auto = run(4), run("auto")
    a = fixed.context.getState(getPositions=True).getPositions(asNumpy=True)._value
    b = auto.context.getState(getPositions=True).getPositions(asNumpy=True)._value
    np.testing.assert_array_equal(a, b)
    assert auto.currentWindow == 1
    replay = openmm.Context(target, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))

    def forces(batch):
        out = []
        for x in batch:
            replay.setPositions(x)
            out.append(replay.getState(getForces=True).getForces(asNumpy=True)._value)
        return np.array(out)

    batched = run("auto", BatchedVerifier(forces))
    assert batched.statistics.acceptanceRate > 0.9
    assert batched.currentWindow > 4
    np.testing.assert_array_equal(batched.context.getState(getPositions=True).getPositions(asNumpy=True)._value, a)


def test_an_accepted_step_is_the_drafted_position_bit_for_bit_with_coupled_constraints(monkeypatch):
    """Alanine dipeptide with rigid H bonds (constraints that share atoms: OpenMM's CCMA, whose coupling
    matrix comes from the System's HarmonicAngleForce angles): the replay's x_j of an accepted step is the
    draft's x_j^d, where the target force for step j + 1 was evaluated ahead. Without the draft's angles in
    the force-free replay System they differed by up to 1e-6 nm on the Reference platform."""
    from openmm_lsd import controller

    top, target, draft, positions = alanineDipeptidePair()
    compared = []
    commit = controller.SpeculativeController._commit

    def checked(self, j, positions, velocities, accepted, fallback, probability):
        record = self.ahead.records.get(j)
        if accepted and record is not None:
            compared.append(np.array_equal(positions, record.positions))
        return commit(self, j, positions, velocities, accepted, fallback, probability)

    monkeypatch.setattr(controller.SpeculativeController, "_commit", checked)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 10 / unit.picosecond, 1 * unit.femtoseconds)
    sim = SpeculativeSimulation(top, target, draft, integrator, window=4, platform="Reference", seed=3)
    sim.context.setPositions(positions)
    sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 5)
    sim.step(12)
    assert len(compared) >= 8 and all(compared)


def test_few_evaluators_get_positions_in_batches_and_the_trajectory_does_not_change():
    """With K evaluators and a longer window, positions go out K at a time from the restart, the next K once
    the current ones are decided, so that a rejection discards at most K - 1 submitted positions (streamed
    to each evaluator as it freed, a position of the next batch would hold an MPI rank for a whole call
    whenever an earlier rejection discards it).  The control: the same verifier claiming unlimited
    evaluators gets positions up to the window ahead, and discards more.  Same trajectory either way."""
    from openmm_lsd.verifiers.inprocess import InProcessVerifier

    target = toy(constraint=True, cmm=3)
    draft = toy(k=(200.0, 150.0, 900.0), shift=0.15, constraint=True, cmm=3)

    class Recording(InProcessVerifier):
        def __init__(self, context, slots):
            super().__init__(context)
            self.concurrency, self.discards = slots, []

        def cancel(self, predicate):
            self.discards.append(sum(1 for key in self._pending if predicate(key)))
            super().cancel(predicate)

    def run(slots):
        context = openmm.Context(target, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        verifier = Recording(context, slots)
        sim = SpeculativeSimulation(topology(3), target, draft, 300, 5.0, 0.004, window=12, platform="Reference",
                                    seed=8, verifier=verifier)
        sim.context.setPositions(startPositions())
        sim.context.setVelocities(startVelocities())
        sim.step(400)
        assert sim.statistics.rejected > 10
        return sim.context.getState(getPositions=True).getPositions(asNumpy=True)._value, verifier.discards

    batches, discards = run(3)
    streamed, streamedDiscards = run(None)
    np.testing.assert_array_equal(batches, streamed)
    assert max(discards) == 2  # batches of 3: a rejection at a batch's first position discards the other two
    assert max(streamedDiscards) > 2
