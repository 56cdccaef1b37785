"""The batched verifier: one model call for all in-flight positions, same trajectory."""

import numpy as np
import openmm
import pytest

from openmm_lsd import SpeculativeSimulation
from openmm_lsd.verifiers import BatchedVerifier
from openmm_lsd.verifiers.base import forcesFromState

from systems import startPositions, startVelocities, topology, toyPair


def systems():
    kw = dict(constraint=True, cmm=2)
    return toyPair(**kw)


def run(verifier=None, window=6):
    target, draft = systems()
    sim = SpeculativeSimulation(topology(3), target, draft, 300, 5.0, 0.004, window=window, seed=21,
                                draftCorrection="offset", correctionLag=4, platform="Reference",
                                verifier=verifier)
    sim.context.setPositions(startPositions())
    sim.context.setVelocities(startVelocities())
    sim.step(80)
    return sim


def test_batched_verifier_gives_the_in_process_trajectory():
    """A batch function that evaluates the same target Context per configuration gives bitwise the same run."""
    target, _ = systems()
    context = openmm.Context(target, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))

    def batchForces(positions):
        out = []
        for x in positions:
            context.setPositions(x)
            out.append(forcesFromState(context.getState(getForces=True)))
        return np.array(out)

    verifier = BatchedVerifier(batchForces)
    batched = run(verifier)
    serial = run()
    a = batched.context.getState(getPositions=True, getVelocities=True)
    b = serial.context.getState(getPositions=True, getVelocities=True)
    np.testing.assert_array_equal(a.getPositions(asNumpy=True)._value, b.getPositions(asNumpy=True)._value)
    np.testing.assert_array_equal(a.getVelocities(asNumpy=True)._value, b.getVelocities(asNumpy=True)._value)
    assert batched.statistics.steps == 80
    assert verifier.numCalls < verifier.numEvaluations / 2  # several positions per call


def test_batched_verifier_checks_shapes():
    verifier = BatchedVerifier(lambda x: np.zeros((1, 2)))
    verifier.submit((1, 0), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="returned forces of shape"):
        verifier.result((1, 0))
    with pytest.raises(ValueError, match="maxBatch"):
        BatchedVerifier(lambda x: x, maxBatch=0)


def test_torch_example_potential():
    pytest.importorskip("torch", reason="the torch example potential needs torch (pip install torch==2.13.0)")
    from openmm_lsd.models import TorchPairPotential

    model = TorchPairPotential(5, seed=3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5, 3)) * 0.15
    energies, forces = model.batchEnergiesAndForces(x)
    single = np.stack([model.batchForces(x[b:b + 1])[0] for b in range(4)])
    np.testing.assert_allclose(forces, single, rtol=0, atol=1e-12)
    # Forces are minus the gradient of the energy (central differences, h = 1e-6 nm).
    h = 1e-6
    for atom, axis in [(0, 0), (3, 2)]:
        xp, xm = x.copy(), x.copy()
        xp[:, atom, axis] += h
        xm[:, atom, axis] -= h
        numeric = -(model.batchEnergiesAndForces(xp)[0] - model.batchEnergiesAndForces(xm)[0]) / (2 * h)
        np.testing.assert_allclose(forces[:, atom, axis], numeric, rtol=1e-5, atol=1e-6)
    # As a PythonForce it gives the same energy, and it pickles through System XML.
    system = openmm.System()
    for _ in range(5):
        system.addParticle(12.0)
    model.addTo(system)
    clone = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
    context = openmm.Context(clone, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(x[0])
    energy = context.getState(getEnergy=True).getPotentialEnergy()._value
    assert energy == pytest.approx(energies[0], rel=1e-12)
