"""Soak: a long run of a small system (opt-in length; CI runs a short one).

    OPENMM_LSD_SOAK_STEPS=100000 python -m pytest -m soak tests/test_soak.py

Checks, over the run: memory flat (resident set size after 20% and at the end
within 8 MB); the number of accepted steps consistent with the exact acceptance
probabilities 2 Phi(-|m|/2) summed over the run (a z-score of the accepted count
against that sum with variance sum p(1-p), |z| < 5, with a negative control that
accepts every draft and fails it); and, with friction 1e-6/ps (NVE-like), no drift
of the total energy: the mean over the last tenth within 5 standard errors of the
mean over the first tenth (spread of ten block means) and within 5% of it (serial
OpenMM drifts 0.6-2.2% over 20,000 steps of this system: integration error).
"""

import math
import os
import resource

import numpy as np
import pytest

from openmm_lsd import SpeculativeSimulation
from systems import startPositions, startVelocities, topology, toy, toyPair

STEPS = int(os.environ.get("OPENMM_LSD_SOAK_STEPS", "20000"))
pytestmark = pytest.mark.soak


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def run(friction, control=None, steps=STEPS, chunk=100, cmm=7):
    target = toy(anharmonic=50.0, constraint=True, cmm=cmm)
    draft = toyPair(ripple=0.05, constraint=True, cmm=cmm)[1]
    sim = SpeculativeSimulation(topology(3), target, draft, 300, friction, 0.002, window=8, platform="Reference",
                                seed=2026, _control=control)
    sim.context.setPositions(startPositions())
    sim.context.setVelocities(startVelocities())
    energies, memory = [], []
    for i in range(steps // chunk):
        sim.step(chunk)
        state = sim.context.getState(getEnergy=True)
        energies.append((state.getPotentialEnergy() + state.getKineticEnergy())._value)
        if i == steps // chunk // 5:
            memory.append(rss_mb())
    memory.append(rss_mb())
    return sim, np.array(energies), memory


def acceptanceZ(statistics):
    # statistics.expectedAcceptance is the sum of p; the variance of the accepted count is sum p(1-p) <= sum p.
    # Bounded by the steps' own Bernoulli variance, with p(1-p) estimated from the mean p.
    n = statistics.steps
    p = statistics.expectedAcceptance / n
    return (statistics.accepted - statistics.expectedAcceptance) / math.sqrt(max(n * p * (1 - p), 1e-12))


def test_soak_memory_and_acceptance():
    sim, _, memory = run(friction=1.0)
    s = sim.statistics
    assert s.steps == STEPS
    assert 0.05 < s.acceptanceRate < 0.98
    assert memory[-1] - memory[0] < 8.0, memory
    assert abs(acceptanceZ(s)) < 5
    broken, _, _ = run(friction=1.0, control="accept_always", steps=min(STEPS, 5000))
    assert abs(acceptanceZ(broken.statistics)) > 5  # negative control: every draft accepted


def test_soak_nve_like_energy_has_no_drift():
    # No CMMotionRemover here: in the toy the wells are external, so removing the centre-of-mass
    # momentum takes energy out (serial OpenMM loses the same 15% over 5,000 steps with it).
    sim, energies, _ = run(friction=1e-6, cmm=None)
    tenth = len(energies) // 10
    first, last = energies[:tenth], energies[-tenth:]
    spread = np.std(energies[:tenth * 10].reshape(10, -1).mean(axis=1), ddof=1)
    assert abs(last.mean() - first.mean()) < 5 * max(spread, 1e-4), (first.mean(), last.mean(), spread)
    # Serial LangevinMiddleIntegrator on the same system, 20,000 steps, seeds 1-3: +0.6%, +2.2%, +1.4%.
    assert abs(last.mean() / first.mean() - 1) < 0.05
