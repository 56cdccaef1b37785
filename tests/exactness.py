"""Harness for the exactness tests: LSD against the serial integrator, many repetitions from one state.

Each repetition restarts both chains from the same fixed state (x0, v0) at a
fixed step index and takes ``STEPS`` steps; LSD repetition r uses seed
``seed0 + r`` and reuses the same Contexts (the controller is reset, which is
what a user-set state does).  The serial chain is one Context whose random
stream simply continues, so repetitions are independent.

The comparison is a two-sample Kolmogorov-Smirnov test on every coordinate of
the final positions and velocities of the massive particles and on a few fixed
random projections of the whole final state, combined with a Bonferroni
correction: ``p = min(1, n_projections * min_i p_i)``.
"""

import numpy as np
import openmm
from scipy import stats

from openmm_lsd import SpeculativeSimulation
from openmm_lsd.integrators import LeapfrogLangevinIntegrator

from systems import startPositions, startVelocities, topology, toy

STEPS = 6
TEMPERATURE = 300.0
FRICTION = 5.0
DT = 0.004
START_STEP = 3


def make_systems(constraint, cmm, virtualSite=False):
    kwargs = dict(constraint=constraint, cmm=cmm, virtualSite=virtualSite)
    target = toy(**kwargs)
    draft = toy(k=(250.0, 400.0, 450.0), bond=1500.0, shift=0.3, ripple=0.15, **kwargs)
    return target, draft


def lsd_samples(constraint, cmm, scheme, reps, control=None, window=4, correction="none", lag=None,
                virtualSite=False, seed0=1000):
    target, draft = make_systems(constraint, cmm, virtualSite)
    n = target.getNumParticles()
    sim = SpeculativeSimulation(topology(n), target, draft, TEMPERATURE, FRICTION, DT, window=window,
                                scheme=scheme, draftCorrection=correction, correctionLag=lag,
                                platform="Reference", seed=seed0, _control=control)
    controller = sim._controller
    x0, v0 = startPositions(3, virtualSite), startVelocities(3, virtualSite)
    out = np.empty((reps, 2, n, 3))
    for r in range(reps):
        controller.seed = seed0 + r
        controller.reset(x0, v0, START_STEP)
        controller.advance(STEPS)
        out[r, 0] = controller.positions
        out[r, 1] = controller.velocities
    return out, controller.statistics


def serial_samples(constraint, cmm, scheme, reps, virtualSite=False, seed=4242):
    target, _ = make_systems(constraint, cmm, virtualSite)
    n = target.getNumParticles()
    if scheme == "leapfrog":
        integrator = LeapfrogLangevinIntegrator(TEMPERATURE, FRICTION, DT)
    else:
        integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE, FRICTION, DT)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(target, integrator, openmm.Platform.getPlatformByName("Reference"))
    x0, v0 = startPositions(3, virtualSite), startVelocities(3, virtualSite)
    out = np.empty((reps, 2, n, 3))
    for r in range(reps):
        context.setPositions(x0)
        context.setVelocities(v0)
        context.setStepCount(START_STEP)
        integrator.step(STEPS)
        state = context.getState(getPositions=True, getVelocities=True)
        out[r, 0] = state.getPositions(asNumpy=True)._value
        out[r, 1] = state.getVelocities(asNumpy=True)._value
    return out


def projections(samples, numRandom=6):
    """The columns compared: every massive coordinate of x and v, and fixed random projections."""
    flat = samples[:, :, :3, :].reshape(len(samples), -1)
    # Standardise by fixed scales so that random projections mix positions and velocities sensibly.
    scale = np.where(np.arange(flat.shape[1]) < flat.shape[1] // 2, 0.01, 1.0)
    rng = np.random.default_rng(7)
    directions = rng.standard_normal((flat.shape[1], numRandom))
    return np.hstack([flat, (flat / scale) @ directions])


def two_sample_p(a, b):
    """Bonferroni-combined two-sample KS p-value over all projections."""
    pa, pb = projections(a), projections(b)
    ps = [stats.ks_2samp(pa[:, i], pb[:, i]).pvalue for i in range(pa.shape[1])]
    return min(1.0, len(ps) * min(ps))
