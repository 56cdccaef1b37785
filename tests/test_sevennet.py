"""A real graph-network target, offline: SevenNet-0 (its weights ship in the ``sevenn`` wheel) on Cu13.

These run for real wherever the README's install was followed (torch's CPU build, then ``.[test]``,
which lists sevenn). The statistical power of the exactness suite stays on the toy systems
(tests/test_exactness.py, 10,000 repetitions); here the law test is at integration level: the real
model, the package's copper example and its Sutton-Chen draft, a few hundred repetitions.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import openmm
import pytest

pytest.importorskip("sevenn", reason="SevenNet tests need sevenn: pip install torch==2.13.0 'openmm-lsd[sevennet]'")

from openmm_lsd import SpeculativeSimulation, createTarget, testsystems, validation  # noqa: E402
from openmm_lsd.models import SevenNetPotential  # noqa: E402
from openmm_lsd.verifiers import BatchedVerifier  # noqa: E402

HERE = Path(__file__).parent
REFERENCE = openmm.Platform.getPlatformByName("Reference")
#: the law test's settings: 4 fs, 10/ps (a sizeable noise per step), 300 K
T, GAMMA, DT = 300.0, 10.0, 0.004


@pytest.fixture(scope="module")
def potential():
    return SevenNetPotential("sevennet-0")


@pytest.fixture(scope="module")
def copper(potential):
    """Cu13 with the SevenNet-0 target (through ``potential``) and the Sutton-Chen draft, and a start state."""
    example = testsystems.copper("cluster", 13, model=potential)
    x0 = np.asarray(example.positions)
    context = openmm.Context(example.target, openmm.VerletIntegrator(0.001), REFERENCE)
    context.setPositions(x0)
    context.setVelocitiesToTemperature(T, 7)
    v0 = context.getState(getVelocities=True).getVelocities(asNumpy=True).value_in_unit(
        openmm.unit.nanometer / openmm.unit.picosecond)
    return example, x0, np.asarray(v0)


def simulation(copper, verifier=None, window=4, seed=1, control=None):
    example, x0, v0 = copper
    sim = SpeculativeSimulation(example.topology, example.target, example.draft, T, GAMMA, DT, window=window,
                                platform="Reference", seed=seed, verifier=verifier, draftCorrection="offset",
                                correctionLag=2, _control=control)
    sim.context.setPositions(x0)
    sim.context.setVelocities(v0)
    return sim


def finalState(sim):
    state = sim.context.getState(getPositions=True, getVelocities=True)
    return np.concatenate([state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer),
                           state.getVelocities(asNumpy=True).value_in_unit(openmm.unit.nanometer
                                                                           / openmm.unit.picosecond)])


def test_target_single_and_batched_calls_give_the_same_bits(copper, potential):
    """The target System's PythonForce (openmm-ml's ``ase`` potential), one configuration in a batch and B
    configurations in one batch: equal forces, bit for bit (one torch thread, the default); energies to float32
    rounding of the model's per-graph sum (which depends on the batch)."""
    example, x0, _ = copper
    rng = np.random.default_rng(0)
    batch = x0[None] + 0.004 * rng.standard_normal((5, 13, 3))
    context = openmm.Context(example.target, openmm.VerletIntegrator(0.001), REFERENCE)
    energies, forces = potential.batchEnergiesAndForces(batch)
    for k, x in enumerate(batch):
        context.setPositions(x)
        state = context.getState(getForces=True, getEnergy=True)
        np.testing.assert_array_equal(state.getForces(asNumpy=True)._value, forces[k])
        assert abs(state.getPotentialEnergy()._value - energies[k]) < 1e-6 * abs(energies[k])
        np.testing.assert_array_equal(potential.batchForces(x[None])[0], forces[k])
    assert np.abs(forces).max() > 10  # real forces (kJ/mol/nm), not zeros


def test_unknown_models_elements_and_fidelities_are_refused_before_work():
    with pytest.raises(ValueError, match="unknown SevenNet model"):
        SevenNetPotential("sevennet-42")
    with pytest.raises(ValueError, match="fidelities"):
        SevenNetPotential("sevennet-mf-0", modal="CCSD")
    with pytest.raises(ValueError, match="one fidelity"):
        SevenNetPotential("sevennet-0", modal="PBE")
    from openmm import app

    topology = app.Topology()
    residue = topology.addResidue("X", topology.addChain())
    topology.addAtom("Og", app.element.Element.getByAtomicNumber(86), residue)
    with pytest.raises(ValueError, match="knows no element with atomic number \\[86\\]"):
        createTarget(topology, "sevennet-0")


def test_multi_fidelity_model_takes_its_fidelity():
    pbe, r2scan = SevenNetPotential("7net-mf-0"), SevenNetPotential("sevennet-mf-0", modal="R2SCAN")
    assert str(pbe) == "sevennet-mf-0 (PBE)"
    x = testsystems.icosahedron(1)[None]
    for p in (pbe, r2scan):
        p.setNumbers([29] * 13)
    assert not np.array_equal(pbe.batchForces(x), r2scan.batchForces(x))


@pytest.fixture(scope="module")
def serialSample(copper):
    """R = 200 runs of OpenMM's LangevinMiddleIntegrator on the SevenNet-0 target from (x0, v0), observed
    after steps 1 and 2 (positions and velocities: 156 columns)."""
    example, x0, v0 = copper
    integrator = openmm.LangevinMiddleIntegrator(T, GAMMA, DT)
    integrator.setRandomNumberSeed(5)
    context = openmm.Context(example.target, integrator, REFERENCE)
    return validation.serialRepetitions(lambda r: context, x0, v0, [1, 1], 200)


@pytest.mark.slow
@pytest.mark.parametrize("control", [None, "accept_always"])
def test_law_on_the_real_graph_network_target(copper, serialSample, control):
    """Two-sample KS per coordinate of the state after 1 and 2 steps (156 columns, Bonferroni), R = 200
    LSD repetitions (seeds 1000-1199) against R = 200 serial ones. Exact LSD: p > 1e-3 (measured 1.0).
    Negative control, every draft accepted (the Sutton-Chen draft's law): p < 1e-6 (measured 2.8e-29)."""
    _, x0, v0 = copper
    sim = simulation(copper, control=control)
    lsd = validation.lsdRepetitions(sim, x0, v0, [1, 1], 200, seed0=1000)
    p = validation.bonferroniKS(lsd, serialSample)
    if control is None:
        assert p > 1e-3
        assert sim.statistics.acceptanceRate < 0.9  # real rejections, so the coupling's reflection is exercised
    else:
        assert p < 1e-6


def test_batched_verifier_gives_the_in_process_trajectory(copper, potential):
    """SevenNet's batched call (the window's drafted positions in one model call) versus one call per position."""
    one = simulation(copper, window=6)
    one.step(30)
    verifier = BatchedVerifier(potential)
    batched = simulation(copper, verifier=verifier, window=6)
    batched.step(30)
    np.testing.assert_array_equal(finalState(batched), finalState(one))
    assert verifier.numCalls < verifier.numEvaluations  # several configurations per model call


def test_checkpoint_resumes_bit_for_bit(copper, tmp_path):
    whole = simulation(copper, window=5)
    whole.step(30)
    first = simulation(copper, window=5)
    first.step(12)
    first.saveCheckpoint(str(tmp_path / "c.lsd"))
    second = simulation(copper, window=3, seed=99)
    second.loadCheckpoint(str(tmp_path / "c.lsd"))
    second.step(18)
    np.testing.assert_array_equal(finalState(second), finalState(whole))


MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (the 'mpich' wheel provides one)")
def test_mpi_ranks_give_the_in_process_trajectory(tmp_path):
    """Each of 2 verifier ranks loads its own SevenNet-0: the trajectory is the in-process one, bit for bit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    env["OMP_NUM_THREADS"] = "1"
    script = [sys.executable, str(HERE / "mpi_run.py")]
    inprocess = subprocess.run(script + [str(tmp_path / "a.npy"), "--system", "sevennet"], capture_output=True,
                               text=True, timeout=300, env=env)
    assert inprocess.returncode == 0, inprocess.stderr
    ranks = subprocess.run([MPIEXEC, "-n", "3"] + script + [str(tmp_path / "b.npy"), "--system", "sevennet",
                                                             "--window", "6"],
                           capture_output=True, text=True, timeout=300, env=env)
    assert ranks.returncode == 0, ranks.stdout + ranks.stderr
    assert "MPIVerifier" in ranks.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), np.load(tmp_path / "a.npy"))


def test_command_line_runs_copper_with_sevennet(tmp_path):
    """``openmm-lsd run --system copper-cluster --target sevennet-0`` (the README's), short, and --batched."""
    for extra in ([], ["--batched"]):
        out = tmp_path / ("batched" if extra else "plain")
        run = subprocess.run([sys.executable, "-m", "openmm_lsd.cli", "run", "--system", "copper-cluster",
                              "--target", "sevennet-0", "--steps", "20", "--output", str(out), "--no-progress",
                              "--platform", "Reference", *extra], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        assert (out / "summary.json").exists()
        assert "sevennet-0 target" in run.stderr
