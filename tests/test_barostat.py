"""Constant pressure: the barostat's moves as OpenMM makes them, refusals, determinism and exact resume.

The law test (LSD + barostat against OpenMM's own serial run) is in test_exactness_npt.py;
determinism across MPI rank counts in test_mpi.py.
"""

import io

import numpy as np
import openmm
import pytest
from openmm import app, unit

import npt
from openmm_lsd import SpeculativeSimulation
from openmm_lsd.barostat import VolumeMoves, boxVolume
from openmm_lsd.verifiers import BatchedVerifier


def waterBox(edge=1.2):
    ff = app.ForceField("amber14/tip3p.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(ff, model="tip3p", boxSize=openmm.Vec3(edge, edge, edge) * unit.nanometer)
    system = ff.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.55, rigidWater=True)
    return modeller, system


@pytest.mark.parametrize("rigid, anisotropic", [(True, False), (False, False), (True, True), (False, True)])
def test_scaling_is_openmm_s(rigid, anisotropic):
    """OpenMM's barostat moves x by (l - 1) * (unweighted molecule centre), or scales atoms, and the box by l
    (anisotropic: one axis, the component of every box vector along it): ours, to 1e-15 nm."""
    modeller, system = waterBox()
    if anisotropic:
        barostat = openmm.MonteCarloAnisotropicBarostat(openmm.Vec3(1, 1, 1), 300.0, True, False, True, 1)
    else:
        barostat = openmm.MonteCarloBarostat(1.0, 300.0, 1)
    barostat.setScaleMoleculesAsRigid(rigid)
    barostat.setRandomNumberSeed(2026)  # OpenMM draws seed 0 from the OS: fixed, so the count of moves is too
    system.addForce(barostat)
    integrator = openmm.CustomIntegrator(0.001)
    integrator.addUpdateContextState()  # the barostat's move, and nothing else
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    x = np.asarray(modeller.positions.value_in_unit(unit.nanometer)) + 0.4  # molecules across the box edge
    context.setPositions(x)
    moves = VolumeMoves(barostat, context.getMolecules(), system.getNumParticles(), 1.2**3)
    assert moves.numScaled == (len(context.getMolecules()) if rigid else system.getNumParticles())
    checked = 0
    # Until 5 accepted moves are checked: the Reference barostat's random numbers come from a generator
    # shared by the process (seeded once), so how many of the first 20 attempts succeeded depended on which
    # tests the worker ran before (3 once under pytest -n 2). Failing would need < 5 of 400 accepted.
    for _ in range(400):
        if checked >= 5:
            break
        before = context.getState(getPositions=True)
        integrator.step(1)
        after = context.getState(getPositions=True)
        box0 = before.getPeriodicBoxVectors(asNumpy=True)._value
        box1 = after.getPeriodicBoxVectors(asNumpy=True)._value
        factor = np.diag(box1) / np.diag(box0)
        if np.any(factor != 1.0):
            assert (np.count_nonzero(factor != 1.0) == 1 and factor[1] == 1.0) if anisotropic else \
                np.ptp(factor) < 1e-14
            expected = moves.scale(before.getPositions(asNumpy=True)._value, factor)
            np.testing.assert_allclose(after.getPositions(asNumpy=True)._value, expected, rtol=0, atol=1e-15)
            np.testing.assert_allclose(box1, box0 * factor[None, :], rtol=1e-15)
            checked += 1
    assert checked >= 5


def test_work_and_adaptation_follow_openmm_s_rules():
    """w = dE + P dV - N kT ln(V'/V); the step shrinks by 1.1 after 10 attempts with < 25% accepted."""
    target, _ = npt.systems()
    barostat = target.getForce(target.getNumForces() - 1)
    moves = VolumeMoves(barostat, [[2 * m, 2 * m + 1] for m in range(npt.MOLECULES)], 24, 1.5)
    assert moves.volumeScale == [pytest.approx(0.015)]
    box = np.eye(3)
    proposal = moves.propose(1, 5, np.zeros((24, 3)), box)
    kT = 0.0083144626 * npt.TEMPERATURE
    w, _ = moves.work(proposal, 10.0, 12.5)
    expected = 2.5 + npt.PRESSURE * 0.0602214076 * proposal.deltaVolume - 12 * kT * np.log(proposal.newVolume)
    assert w == pytest.approx(expected, rel=1e-9)
    for _ in range(10):
        moves.decide(proposal, 0.0, 1e6)  # w huge: rejected
    assert moves.accepts == 0 and moves.volumeScale == [pytest.approx(0.015 / 1.1)]
    for _ in range(10):
        moves.decide(proposal, 0.0, -1e6)  # accepted
    assert moves.volumeScale == [pytest.approx(0.015)]
    assert [moves.due(t) for t in range(6)] == [False, True, False, True, False, True]


def _simulation(target=None, draft=None, **kw):
    defaultTarget, defaultDraft = npt.systems()
    options = dict(window=4, platform="Reference", seed=9)
    options.update(kw)
    sim = SpeculativeSimulation(npt.topology(), target or defaultTarget, draft or defaultDraft, npt.TEMPERATURE,
                                npt.FRICTION, npt.DT, **options)
    x0, v0 = npt.start()
    sim.context.setPositions(x0)
    sim.context.setVelocities(v0)
    return sim


def _state(sim):
    state = sim.context.getState(getPositions=True, getVelocities=True)
    return (state.getPositions(asNumpy=True)._value, state.getVelocities(asNumpy=True)._value,
            state.getPeriodicBoxVectors(asNumpy=True)._value)


def _assertSame(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_same_trajectory_for_any_window_and_step_split():
    """Moves keyed by (seed, step): windows 1 and 7, step(40) and step(7)+step(13)+step(20) agree bit for bit."""
    whole = _simulation(window=7)
    whole.step(40)
    assert 5 <= whole.statistics.volumeMovesAccepted < whole.statistics.volumeMoves == 20
    split = _simulation(window=1)
    for n in (7, 13, 20):
        split.step(n)
    _assertSame(_state(whole), _state(split))
    volume = boxVolume(_state(whole)[2])
    assert volume != pytest.approx(npt.EDGE**3, rel=1e-6)


@pytest.mark.parametrize("stop", [5, 6, 11])
def test_checkpoint_resumes_exactly_through_volume_moves(stop):
    """Stopped at step 5 (a move due next), 6 (just after one) or 11, saved, loaded into a new simulation with
    another window: the uninterrupted trajectory and box."""
    whole = _simulation()
    whole.step(30)
    first = _simulation()
    first.step(stop)
    buffer = io.BytesIO()
    first.saveCheckpoint(buffer)
    buffer.seek(0)
    second = _simulation(window=6, seed=1)
    second.loadCheckpoint(buffer)
    second.step(30 - stop)
    _assertSame(_state(whole), _state(second))
    assert second.statistics.volumeMoves == whole.statistics.volumeMoves == 15


def test_pressure_parameter_is_read_from_the_context():
    """Setting MonteCarloPressure on the Context between steps changes the moves, as with OpenMM's barostat."""
    low, high = _simulation(), _simulation()
    high.context.setParameter(openmm.MonteCarloBarostat.Pressure(), 20000.0)
    low.step(40)
    high.step(40)
    assert boxVolume(_state(high)[2]) < boxVolume(_state(low)[2])


def test_draft_barostat_is_ignored():
    """The target's barostat decides; a draft's (any pressure) changes nothing."""
    target, draft = npt.systems()
    draft.addForce(openmm.MonteCarloBarostat(1.0, 100.0, 1))
    with_draft_barostat = _simulation(target, draft)
    with_draft_barostat.step(20)
    plain = _simulation()
    plain.step(20)
    _assertSame(_state(plain), _state(with_draft_barostat))


def test_reporters_see_the_box():
    sim = _simulation()
    out = io.StringIO()
    sim.reporters.append(app.StateDataReporter(out, 10, step=True, volume=True, density=True))
    sim.step(30)
    volumes = [float(line.split(",")[1]) for line in out.getvalue().splitlines()[1:]]
    assert len(volumes) == 3 and volumes[-1] == pytest.approx(boxVolume(_state(sim)[2]))
    assert len(set(volumes)) > 1


def test_refusals_name_the_problem():
    target, draft = npt.systems()
    membrane = openmm.XmlSerializer.clone(target)
    membrane.removeForce(membrane.getNumForces() - 1)
    membrane.addForce(openmm.MonteCarloMembraneBarostat(1.0, 0.0, 300.0, openmm.MonteCarloMembraneBarostat.XYIsotropic,
                                                        openmm.MonteCarloMembraneBarostat.ZFree))
    with pytest.raises(ValueError, match="MonteCarloMembraneBarostat: speculative dynamics supports OpenMM's "
                                         "MonteCarloBarostat and MonteCarloAnisotropicBarostat"):
        _simulation(membrane)
    two = openmm.XmlSerializer.clone(target)
    two.addForce(openmm.MonteCarloBarostat(1.0, 300.0))
    with pytest.raises(ValueError, match="2 Monte Carlo barostats"):
        _simulation(two)
    bare = openmm.XmlSerializer.clone(target)
    bare.removeForce(bare.getNumForces() - 1)
    draftWithBarostat = openmm.XmlSerializer.clone(draft)
    draftWithBarostat.addForce(openmm.MonteCarloBarostat(1.0, 300.0))
    with pytest.raises(ValueError, match="draft System has a Monte Carlo barostat and the target has none"):
        _simulation(bare, draftWithBarostat)
    with pytest.raises(ValueError, match="BatchedVerifier cannot"):
        _simulation(verifier=BatchedVerifier(lambda x: np.zeros_like(x)))
    andersen = openmm.XmlSerializer.clone(target)
    andersen.addForce(openmm.AndersenThermostat(300.0, 1.0))
    with pytest.raises(ValueError, match="AndersenThermostat"):
        _simulation(andersen)


def test_checkpoint_of_an_nvt_run_is_refused_by_an_npt_simulation():
    from openmm_lsd.checkpoint import CheckpointError

    target, draft = npt.systems()
    nvt = openmm.XmlSerializer.clone(target)
    nvt.removeForce(nvt.getNumForces() - 1)
    sim = _simulation(nvt, draft)
    sim.step(3)
    buffer = io.BytesIO()
    sim.saveCheckpoint(buffer)
    buffer.seek(0)
    with pytest.raises(CheckpointError, match="barostat"):
        _simulation().loadCheckpoint(buffer)


def test_trial_box_below_twice_the_cutoff_stops_at_the_last_accepted_step():
    """As in OpenMM's serial run, a box shrunk below twice the cutoff is an error: named, at the last accepted step."""
    target, draft = npt.systems()
    for system in (target, draft):
        for force in system.getForces():
            if isinstance(force, openmm.NonbondedForce):
                force.setCutoffDistance(0.4999 * npt.EDGE)
    sim = _simulation(target, draft)
    with pytest.raises(RuntimeError, match="at step (\\d+): OpenMMException: The periodic box size has decreased"):
        sim.step(40)
    step = sim.currentStep
    assert step % 2 == 1 and sim._controller.barostat.due(step)  # stopped where the move was attempted
    assert _state(sim)[2][0][0] >= 2 * 0.4999 * npt.EDGE  # the Context holds the last valid box


def test_anisotropic_barostat_moves_one_axis_and_resumes_exactly():
    """MonteCarloAnisotropicBarostat (x and z scaled, y fixed): only x and z edges change; a checkpoint through
    its moves resumes bit for bit; its per-axis pressure parameters are read from the Context."""
    target, draft = npt.systems(anisotropic=True)
    whole = _simulation(target, draft)
    whole.step(30)
    box = _state(whole)[2]
    assert box[1][1] == npt.EDGE and box[0][0] != npt.EDGE and box[2][2] != npt.EDGE
    first = _simulation(*npt.systems(anisotropic=True))
    first.step(12)
    buffer = io.BytesIO()
    first.saveCheckpoint(buffer)
    buffer.seek(0)
    second = _simulation(*npt.systems(anisotropic=True), window=2)
    second.loadCheckpoint(buffer)
    second.step(18)
    _assertSame(_state(whole), _state(second))
    assert second._volumeMoves.pressures == list(npt.ANISOTROPIC_PRESSURES)
