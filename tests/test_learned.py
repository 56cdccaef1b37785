"""The 'learned' correction (issue #14): its model, its fit schedule and its determinism.

The law test is in test_exactness.py ('middle-learned', R = 10,000, with the control that folds
discarded drafts into the fit); the MPI and resume tests are in test_mpi.py and test_checkpoint.py.
"""

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import openmm
import pytest

from openmm_lsd import SpeculativeSimulation
from openmm_lsd.corrections import LearnedCorrection
from openmm_lsd.learned import PairEmbeddingModel, normalEquations, solveRidge
from openmm_lsd.testsystems import copper, fccBox, icosahedron

from systems import DRAFT_CHANGES, startPositions, startVelocities, topology, toy

REFERENCE = openmm.Platform.getPlatformByName("Reference")
LEARNED = partial(LearnedCorrection, 2, every=3, minFrames=2)


def copperSystem(positions, box=None):
    system = openmm.System()
    for _ in range(len(positions)):
        system.addParticle(63.546)
    if box is not None:  # periodic as a draft is: through a periodic force
        system.setDefaultPeriodicBoxVectors(*(np.eye(3) * box))
        force = openmm.CustomNonbondedForce("0")
        force.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
        force.setCutoffDistance(0.3)
        for _ in range(len(positions)):
            force.addParticle([])
        system.addForce(force)
    return system


def assertFeaturesAreMinusTheGradient(model, x, columns=slice(None), box=None, h=1e-6):
    """Each column's forces G(x) are minus the central difference of its energy E(x) (step ``h`` nm), to 1e-6 of
    the largest force of the columns checked (Legendre derivatives once had the wrong factor: the forces of the
    three-body terms of order >= 1 were not those of their energies, and the Context agreed with the features)."""
    G = model.features(x, box).reshape(len(x), 3, -1)[:, :, columns]
    worst = 0.0
    for i in range(len(x)):
        for axis in range(3):
            up, down = x.copy(), x.copy()
            up[i, axis] += h
            down[i, axis] -= h
            difference = -(model.energies(up, box)[columns] - model.energies(down, box)[columns]) / (2 * h)
            worst = max(worst, float(np.abs(difference - G[i, axis]).max()))
    assert worst < 1e-6 * np.abs(G).max()


def assertContextMatchesFeatures(system, model, x, rng, box=None):
    """The model's forces and energy in a Context on ``system`` (through an XML copy, as the engine makes) at random
    theta: G(x) theta and E(x) theta to rounding.  Returns the Context's forces."""
    context = openmm.Context(openmm.XmlSerializer.clone(system), openmm.VerletIntegrator(0.001), REFERENCE)
    theta = rng.standard_normal(model.numParameters)
    model.apply(context, theta)
    context.setPositions(x)
    state = context.getState(getForces=True, getEnergy=True)
    forces = state.getForces(asNumpy=True)._value
    np.testing.assert_allclose(forces, model.forces(model.features(x, box), theta), atol=1e-9 * np.abs(forces).max())
    energy = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    assert energy == pytest.approx(float((model.energies(x, box) * theta).sum()), rel=1e-9, abs=1e-9)
    return forces


BASES = {"pair+embedding": ({}, 21), "three-body": (dict(angularLengths=(0.03, 0.06, 0.12)), 33),
         "pair+embedding custom": (dict(draftForces="custom"), 21),
         "three-body custom": (dict(angularLengths=(0.03, 0.06, 0.12), draftForces="custom"), 33),
         "region": (dict(particles=range(7)), 21), "region three-body": (dict(particles=range(7), angularLengths=(0.05,)), 25)}


@pytest.mark.parametrize("basis", sorted(BASES))
@pytest.mark.parametrize("periodic", [False, True])
def test_numpy_features_are_the_draft_forces(periodic, basis):
    """The fit's features G(x) theta and energies E(x) theta against the forces and energy of the model in the
    draft Context (the numpy PythonForce that 'auto' picks for the 13-atom cluster, the custom forces with the
    three-body terms as a PythonForce that it picks for the 32-atom box, both forced; a region's model; through
    an XML copy of the System as the engine makes), at random theta: equal to rounding (the cluster without
    cutoff; the fcc box with the minimum image and the 0.65 nm cutoff)."""
    options, numParameters = BASES[basis]
    positions, box = (icosahedron(1), None) if not periodic else fccBox(2)
    rng = np.random.default_rng(0)
    x = np.asarray(positions) + 0.01 * rng.standard_normal(np.shape(positions))
    system = copperSystem(x, box)
    model = PairEmbeddingModel(system, **options)
    assert model.numParameters == numParameters
    model.addTo(system)
    kinds = {type(f).__name__ for f in system.getForces() if f.getName() == "LearnedCorrection"}
    custom = "custom" in basis or (basis in ("pair+embedding", "three-body") and periodic)  # 78 / 496 pairs
    assert model.numpyInDraft is not custom
    assert kinds == ({"CustomNonbondedForce", "CustomGBForce"} | ({"PythonForce"} if "three" in basis else set())
                     if custom else {"PythonForce"})
    forces = assertContextMatchesFeatures(system, model, x, rng, None if box is None else np.eye(3) * box)
    if not periodic:
        assertFeaturesAreMinusTheGradient(model, x)
    if "region" in basis:  # nothing on the particles outside the region
        assert not forces[7:].any()


def test_an_ml_mm_target_gives_the_model_its_region():
    """A target whose ML potential (a PythonForce) declares its particles: the learned correction models those
    (ML/MM, where the difference from a classical draft lives); one that declares none: all particles."""
    from openmm_lsd.learned import targetRegion

    target, draft = toy(), toy(**DRAFT_CHANGES)
    assert targetRegion(target) is None
    target.addForce(openmm.PythonForce(lambda state: (0.0, np.zeros((3, 3))), {}, (0, 1)))
    assert targetRegion(target) == [0, 1]
    correction = LearnedCorrection(2)
    extended = correction.extendDraft(draft, target)
    assert correction.basis["particles"] == [0, 1]
    assert any(isinstance(f, openmm.PythonForce) and f.getName() == "LearnedCorrection" for f in extended.getForces())
    target.addForce(openmm.PythonForce(lambda state: (0.0, np.zeros((3, 3)))))
    assert targetRegion(target) is None


def test_ridge_solution_is_the_least_squares_one():
    rng = np.random.default_rng(1)
    G, r = rng.standard_normal((60, 5)), rng.standard_normal(60)
    A, y = normalEquations(G, r, np.ones(60))
    np.testing.assert_allclose(solveRidge(A, y, 1e-12), np.linalg.lstsq(G, r, rcond=None)[0], rtol=1e-8)


def make(correction=LEARNED, window=4, seed=11):
    target, draft = toy(constraint=True, cmm=3), toy(**dict(DRAFT_CHANGES, constraint=True, cmm=3))
    sim = SpeculativeSimulation(topology(3), target, draft, 300, 5.0, 0.004, window=window,
                                draftCorrection=correction() if callable(correction) else correction,
                                correctionLag=2, platform="Reference", seed=seed)
    sim.context.setPositions(startPositions())
    sim.context.setVelocities(startVelocities())
    return sim


def state(sim):
    s = sim.context.getState(getPositions=True, getVelocities=True)
    return np.concatenate([s.getPositions(asNumpy=True)._value, s.getVelocities(asNumpy=True)._value])


@pytest.mark.parametrize("correction", [LEARNED, partial(LearnedCorrection, 2, every=3, minFrames=2,
                                                          basis=dict(angularLengths=(0.05, 0.1)))],
                         ids=["pair+embedding", "three-body"])
def test_same_trajectory_for_windows_1_7_32_and_the_fit_is_in_force(correction):
    runs = [make(correction, window=w) for w in (1, 7, 32)]
    for sim in runs:
        sim.step(60)
    for sim in runs[1:]:
        np.testing.assert_array_equal(state(sim), state(runs[0]))
    assert runs[0].correction.refits >= 19  # a refit every 3 steps
    plain = make("extrapolate-quadratic")
    plain.step(60)
    assert not np.array_equal(state(plain), state(runs[0]))  # the fitted model changed the draft


def test_the_lag_objective_is_the_extrapolations_error_at_accepted_frames():
    """The default objective, rebuilt outside the engine from the run's accepted positions (read after every
    step) and the target-minus-draft forces there: the newest fit minimises, over the frames
    s <= block * every - fitLag in the metric 1/m,
    sum_s |dF_s - P(dF_{s-L}, dF_{s-L-1}, dF_{s-L-2}) - (G_s - P(G_{s-L}, ...)) theta|^2 + 0.1 |dF_s - G_s theta|^2,
    P the quadratic Lagrange polynomial at h = L; the force error alone would give a different fit."""
    from openmm_lsd.corrections import FORCE_WEIGHT, lagrangeWeights

    sim = make(window=4)
    target, draft = toy(constraint=True, cmm=3), toy(**dict(DRAFT_CHANGES, constraint=True, cmm=3))
    contexts = [openmm.Context(system, openmm.VerletIntegrator(0.001), REFERENCE) for system in (target, draft)]
    xs, ds = [], []
    for step in range(31):
        if step:
            sim.step(1)
        x = sim.context.getState(getPositions=True).getPositions(asNumpy=True)._value
        forces = []
        for context in contexts:
            context.setPositions(x)
            forces.append(context.getState(getForces=True).getForces(asNumpy=True)._value)
        xs.append(np.array(x))
        ds.append(forces[0] - forces[1])
    c = sim.correction
    model, lag, every = c.model, c.lag, c.every
    G = [model.features(x) for x in xs]
    weights = lagrangeWeights(2, lag)
    block = max(c._thetas)  # the newest fit (the blocks are fitted in order; ``_latest`` is its unshrunk theta)
    last = block * every - c.fitLag
    assert last > lag + 2 + 10  # more change rows than coefficients
    A, y, Ac, yc = 0, 0, 0, 0
    for s in range(1, last + 1):
        a, b = normalEquations(G[s], ds[s].ravel(), model.weights)
        A, y = A + a, y + b
        if s - lag - 2 >= 0:
            change = ds[s] - sum(w * ds[s - lag - k] for k, w in enumerate(weights))
            features = G[s] - sum(w * G[s - lag - k] for k, w in enumerate(weights))
            a, b = normalEquations(features, change.ravel(), model.weights)
            Ac, yc = Ac + a, yc + b
    np.testing.assert_allclose(c._latest, solveRidge(Ac + FORCE_WEIGHT * A, yc + FORCE_WEIGHT * y, c.ridge),
                               rtol=1e-5, atol=1e-12)  # the forces here and in the run agree to rounding
    assert not np.allclose(c._latest, solveRidge(A, y, c.ridge), rtol=1e-3)


def test_the_local_response_is_the_least_squares_map_of_recent_frames():
    """The local response added for a drafted step, against the same map computed outside the engine in its
    primal form: J = argmin sum_k |dr_k - J dx_k|^2 + mu |J|^2 over the accepted frames k = s - 16 .. s - 1
    (dx_k = sqrt(m)(x_k - x_s), dr_k the change of the model's residual), mu = 1e-3 trace/dim, applied to
    sqrt(m)(start - P(x_s, x_{s-1}, x_{s-2})) with the residual's quadratic polynomial in time."""
    from openmm_lsd.corrections import RESPONSE_RIDGE, lagrangeWeights

    sim = make(window=4)
    sim.step(40)
    c, controller = sim.correction, sim.correction._controller
    assert c.response == 16
    j = controller.frontier.step + 1
    s = c.source(j, controller.frontier.origin, controller.frontier.restartStep)
    h = min(j - 1 - s, c.horizon)
    theta = c.coefficients(c._block(j))
    x = {k: np.asarray(controller.inputs.acceptedPositions[k]) for k in range(s - 16, s + 1)}
    r = {k: controller.inputs.differences[k] - c.model.forces(c.model.features(x[k]), theta) for k in x}
    root = np.sqrt(np.repeat(c.model.masses, 3))
    D = np.array([(x[k] - x[s]).ravel() * root for k in range(s - 16, s)])
    R = np.array([(r[k] - r[s]).ravel() for k in range(s - 16, s)])
    A = D.T @ D
    J = np.linalg.solve(A + RESPONSE_RIDGE * np.trace(A) / len(A) * np.eye(len(A)), D.T @ R)
    start = x[s] + 0.003 * np.random.default_rng(3).standard_normal(x[s].shape)
    predicted = sum(w * x[s - k] for k, w in enumerate(lagrangeWeights(2, h)))
    expected = (((start - predicted).ravel() * root) @ J).reshape(start.shape)
    differences = controller.inputs.differences
    term = (c.combine(j, controller.frontier.origin, controller.frontier.restartStep, differences, start=start)
            - c.combine(j, controller.frontier.origin, controller.frontier.restartStep, differences))
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(term, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())


def test_fit_is_the_same_bits_whatever_the_thread_count(tmp_path):
    """The same run with 1 and with 2 BLAS/OpenMP threads: equal states, bit for bit."""
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_learned import make, state\n"
        "sim = make(window=5)\nsim.step(45)\nnp.save(sys.argv[1], state(sim))\n")
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        run = subprocess.run([sys.executable, str(script), str(tmp_path / f"{threads}.npy")], env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "1.npy"), np.load(tmp_path / "2.npy"))


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="fitLag .* must be at least the lag"):
        LearnedCorrection(8, fitLag=4)
    with pytest.raises(ValueError, match="every must be an integer"):
        LearnedCorrection(8, every=0)
    with pytest.raises(ValueError, match="ridge must be > 0"):
        LearnedCorrection(8, ridge=0)
    with pytest.raises(ValueError, match="objective must be one of"):
        LearnedCorrection(8, objective="energy")
    with pytest.raises(ValueError, match="with residual=False there is none"):
        LearnedCorrection(8, residual=False, objective="lag")
    with pytest.raises(ValueError, match="forceWeight must be >= 0"):
        LearnedCorrection(8, forceWeight=-1)
    with pytest.raises(ValueError, match="response must be an integer >= 0"):
        LearnedCorrection(8, response=-2)
    with pytest.raises(ValueError, match="response extends the residual's extrapolation"):
        LearnedCorrection(8, residual=False, response=16)
    assert LearnedCorrection(8, residual=False).response == 0
    system = copperSystem(icosahedron(1))
    with pytest.raises(ValueError, match="draftForces must be one of"):
        PairEmbeddingModel(system, draftForces="cuda")
    with pytest.raises(ValueError, match="a region's model .* numpy"):
        PairEmbeddingModel(system, particles=range(7), draftForces="custom")


@pytest.mark.slow
def test_learned_correction_learns_copper():
    """Cu13, GFN1-xTB target, Sutton-Chen draft, 2 fs, 1/ps, window and lag 16, 300 steps: the fit is in force
    (from step 51) and the run's acceptance beats the quadratic extrapolation's at the same settings."""
    pytest.importorskip("tblite", reason="the GFN1-xTB target needs tblite")
    cluster = copper("cluster", 13)
    out = {}
    for name in ("learned", "extrapolate-quadratic"):
        sim = SpeculativeSimulation(cluster.topology, cluster.target, cluster.draft, 300, 1.0, 0.002, window=16,
                                    draftCorrection=name, correctionLag=16, platform="Reference", seed=1)
        sim.context.setPositions(cluster.positions)
        sim.context.setVelocitiesToTemperature(300, 1)
        sim.step(100)
        sim.resetStatistics()
        sim.step(200)
        out[name] = sim.statistics.acceptanceRate
    assert out["learned"] > out["extrapolate-quadratic"]


def test_model_takes_the_drafts_exclusions():
    """Rigid TIP3P (a NonbondedForce with exceptions): the model's forces carry the same exclusions (OpenMM
    requires it) and the features leave those pairs out too."""
    pytest.importorskip("tblite", reason="the water example's target needs tblite")
    from openmm_lsd.testsystems import water

    example = water(2)
    model = PairEmbeddingModel(example.draft)
    assert len(model.exclusions) == 6  # O-H, O-H, H-H of each water
    system = openmm.XmlSerializer.clone(example.draft)
    model.addTo(system)
    context, plain = (openmm.Context(s, openmm.VerletIntegrator(0.001), REFERENCE) for s in (system, example.draft))
    theta = np.random.default_rng(2).standard_normal(model.numParameters) * 0.1
    model.apply(context, theta)
    x = np.asarray(example.positions)
    for c in (context, plain):
        c.setPositions(x)
    difference = (context.getState(getForces=True).getForces(asNumpy=True)._value
                  - plain.getState(getForces=True).getForces(asNumpy=True)._value)
    np.testing.assert_allclose(difference, model.forces(model.features(x), theta), atol=1e-8 * np.abs(difference).max())


def test_estimate_gives_a_learning_curve_and_the_second_half():
    """``estimate`` with the learned correction: four parts of the sample in its learning curve, and the
    prediction from the second half (the fit in force) next to the whole sample's."""
    from openmm_lsd.analysis import estimate

    x, v = startPositions(3), startVelocities(3)
    result = estimate(lambda: make(window=4), x, v, steps=48, verifiers=(1, 8))
    curve = result["predicted_acceptance_curve"]
    assert len(curve) == 4 and all(0 <= p["expected_acceptance"] <= 1 for p in curve)
    assert [p["step"] for p in curve] == [12, 24, 36, 48]
    assert len(result["predicted_acceptance_by_position_second_half"]) == 4
    assert result["predicted_steps_per_round_second_half"] >= 1
    assert set(result["predicted_speedup_second_half"]) == {"1", "8"}
    plain = estimate(lambda: make("extrapolate-quadratic", window=4), x, v, steps=48, verifiers=(1,))
    assert "predicted_steps_per_round_second_half" not in plain  # only for a correction fitted during the run


def _alanineDipeptideDraft(periodic):
    from openmm import app

    from openmm_lsd.testsystems import alanineDipeptidePDB

    pdb = alanineDipeptidePDB()
    topology = pdb.topology
    options = dict(constraints=app.HBonds)
    if periodic:
        topology.setPeriodicBoxVectors(np.eye(3) * 2.0 * openmm.unit.nanometer)
        options.update(nonbondedMethod=app.CutoffPeriodic, nonbondedCutoff=0.9 * openmm.unit.nanometer)
    system = app.ForceField("amber14-all.xml").createSystem(topology, **options)
    return system, np.asarray(pdb.positions.value_in_unit(openmm.unit.nanometer))


@pytest.mark.parametrize("draftForces", ["auto", "numpy", "numpy+three-body"])
def test_bonded_terms_are_minus_the_gradient_of_their_energies_and_the_draft_forces(draftForces):
    """The bonded columns (``bonded=True``: per type, powers 1-3 of the draft's bond lengths and angles about its
    own equilibrium values, cos and sin of 1-3 times its torsions) on alanine dipeptide's Amber14 draft: each
    column's forces are minus the central difference of its energy (h = 1e-6 nm) to 1e-6 of the largest force;
    the model in a draft Context (the bonded PythonForce beside the custom forces that 'auto' picks for 22 atoms,
    or the one numpy force) gives G theta and E theta at random theta; and in a periodic box, atoms moved by a box
    vector (a bond across the boundary) change no feature.  156 columns without, 252 with the bonded terms."""
    system, x0 = _alanineDipeptideDraft(periodic=False)
    rng = np.random.default_rng(3)
    x = x0 + 0.005 * rng.standard_normal(x0.shape)
    assert PairEmbeddingModel(system).numParameters == 156
    angular = dict(angularLengths=(0.05,)) if "three-body" in draftForces else {}  # both after the radial columns
    model = PairEmbeddingModel(system, bonded=True, draftForces=draftForces.split("+")[0], **angular)
    assert model.numParameters == 252 + (16 if angular else 0) and model.numRadial == 156  # 4 species x 4 orders
    G = model.features(x).reshape(len(x), 3, -1)
    assertFeaturesAreMinusTheGradient(model, x, slice(model.numRadial, None))
    copy = openmm.XmlSerializer.clone(system)
    model.addTo(copy)
    kinds = sorted(type(f).__name__ for f in copy.getForces() if f.getName() == "LearnedCorrection")
    assert kinds == (["PythonForce"] if draftForces.startswith("numpy") else
                     ["CustomGBForce"] * 3 + ["CustomNonbondedForce", "PythonForce"])
    only = openmm.System()  # the model's forces alone
    for i in range(copy.getNumParticles()):
        only.addParticle(copy.getParticleMass(i))
    for force in copy.getForces():
        if force.getName() == "LearnedCorrection":
            only.addForce(openmm.XmlSerializer.clone(force))
    assertContextMatchesFeatures(only, model, x, rng)
    periodicSystem, _ = _alanineDipeptideDraft(periodic=True)
    periodicModel = PairEmbeddingModel(periodicSystem, bonded=True)
    box = np.eye(3) * 2.0
    wrapped = x.copy()
    wrapped[::2, 0] += 2.0  # every other atom one box over: bonds, angles and torsions across the boundary
    np.testing.assert_allclose(periodicModel.bonded.features(wrapped, box), periodicModel.bonded.features(x, box),
                               atol=1e-9 * np.abs(G).max())
    assert not np.allclose(periodicModel.bonded.features(wrapped, None), periodicModel.bonded.features(x, None))
