"""Harness for the exactness tests: LSD against the serial integrator, many repetitions from one state.

Each repetition restarts both chains from the same fixed state (x0, v0) at a
fixed step index and takes ``STEPS`` steps; LSD repetition r uses seed
``seed0 + r`` and reuses the same Contexts (the controller is reset, which is
what a user-set state does).  The serial chain is one Context whose random
stream simply continues, so repetitions are independent.

The comparison is a two-sample Kolmogorov-Smirnov test on every coordinate of
the final positions (a virtual site's included) and of the velocities of the
massive particles and on a few fixed random projections of the whole final state,
combined with a Bonferroni correction: ``p = min(1, n_projections * min_i p_i)``.
"""

from contextlib import nullcontext
from unittest import mock

import numpy as np
import openmm

from openmm_lsd import SpeculativeSimulation, compatibility, validation
from openmm_lsd.integrators import LeapfrogLangevinIntegrator

from systems import startPositions, startVelocities, topology, toy

STEPS = 6
TEMPERATURE = 300.0
FRICTION = 5.0
DT = 0.004
START_STEP = 3


#: the learned correction's leak configuration: a 12 Da particle bonded (0.3 nm, 300 kJ/mol/nm^2) to four
#: 1200 Da ones at the corners of a tetrahedron; the draft adds an anisotropic well on it (kJ/mol/nm^2)
CAGE = 0.3 / np.sqrt(3) * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
CAGE_BOND = 300.0
CAGE_DRAFT_WELL = (40_000.0, 10_000.0, 80_000.0)

#: the site definition of the virtual-site control: another average of other parents (the target's is 0, 1, 1/2, 1/2)
WRONG_SITE = (0, 2, 0.2, 0.8)


def make_systems(constraint, cmm, virtualSite=False, ripple=0.15, draftSite=None, kind="chain"):
    """(target, draft).  ``kind='chain'``: the 3-particle chain of tests/systems.py, the draft's wells softer,
    shifted and rippled; ``'stiff'``: one particle (12 Da) in a 400 kJ/mol/nm^2 well drafted by an 80,000
    one, a force error that changes fast with position (the leak control's configuration); ``'cage'``: one
    light particle bonded to four heavy ones, the draft with a stiff anisotropic well on it, an error that the
    learned correction's pair terms cannot represent (the fit-leak control's configuration)."""
    if kind == "stiff":
        return toy(1, k=(400.0,) * 3, bond=0), toy(1, k=(80_000.0,) * 3, bond=0)
    if kind == "cage":
        return cage(), cage(CAGE_DRAFT_WELL)
    kwargs = dict(constraint=constraint, cmm=cmm, virtualSite=virtualSite)
    target = toy(**kwargs)
    site = openmm.TwoParticleAverageSite(*draftSite) if draftSite else None
    draft = toy(k=(250.0, 400.0, 450.0), bond=1500.0, shift=0.3, ripple=ripple, site=site, **kwargs)
    return target, draft


def cage(well=None):
    """Particle 0 (12 Da) bonded to particles 1-4 (1200 Da) at the corners of :data:`CAGE`; ``well``: a harmonic
    well (kx, ky, kz) on particle 0 about the centre (the draft's)."""
    system = openmm.System()
    system.addParticle(12.0)
    bonds = openmm.HarmonicBondForce()
    for corner in range(len(CAGE)):
        system.addParticle(1200.0)
        bonds.addBond(0, corner + 1, 0.3, CAGE_BOND)
    system.addForce(bonds)
    if well is not None:
        external = openmm.CustomExternalForce("0.5*(wx*x^2 + wy*y^2 + wz*z^2)")
        for name, value in zip(("wx", "wy", "wz"), well):
            external.addGlobalParameter(name, value)
        external.addParticle(0, [])
        system.addForce(external)
    return system


def start(kind="chain", virtualSite=False):
    """The fixed start state (x0, v0) of every repetition."""
    if kind == "cage":  # the light particle off the centre, the heavy ones at rest at the corners
        return np.vstack([[[0.02, 0.01, -0.005]], CAGE]), np.vstack([[[0.3, -0.2, 0.1]], np.zeros((4, 3))])
    if kind == "stiff":  # off the well's centre: the first step is almost always rejected, and leaks
        return np.array([[0.02, 0.01, -0.005]]), startVelocities(1)
    return startPositions(3, virtualSite), startVelocities(3, virtualSite)


def lsd_samples(constraint, cmm, scheme, reps, control=None, window=4, correction="none", lag=None,
                virtualSite=False, seed0=1000, steps=STEPS, ripple=0.15, kind="chain"):
    """``control``: a name of :mod:`openmm_lsd.testing`'s variants, or ``'wrong_site'`` (the draft's own
    virtual-site definition, slipped past the check that refuses it)."""
    target, draft = make_systems(constraint, cmm, virtualSite, ripple,
                                 draftSite=WRONG_SITE if control == "wrong_site" else None, kind=kind)
    if callable(correction):  # a correction with options, built afresh for each simulation
        correction = correction()
    n = target.getNumParticles()
    engineControl = None if control == "wrong_site" else control
    with mock.patch.object(compatibility, "checkSystems", lambda *a: None) if control == "wrong_site" else nullcontext():
        sim = SpeculativeSimulation(topology(n), target, draft, TEMPERATURE, FRICTION, DT, window=window,
                                    scheme=scheme, draftCorrection=correction, correctionLag=lag,
                                    platform="Reference", seed=seed0, _control=engineControl)
    x0, v0 = start(kind, virtualSite)
    out = validation.lsdRepetitions(sim, x0, v0, steps, reps, seed0=seed0, startStep=START_STEP)
    return out.reshape(reps, 2, n, 3), sim.statistics


def serial_samples(constraint, cmm, scheme, reps, virtualSite=False, seed=4242, steps=STEPS, kind="chain"):
    """The serial integrator's samples: OpenMM's LangevinMiddleIntegrator, or its LangevinIntegrator for
    ``'Langevin'``, or the package's leapfrog one."""
    target, _ = make_systems(constraint, cmm, virtualSite, kind=kind)
    n = target.getNumParticles()
    if scheme == "leapfrog":
        integrator = LeapfrogLangevinIntegrator(TEMPERATURE, FRICTION, DT)
    elif scheme == "Langevin":
        integrator = openmm.LangevinIntegrator(TEMPERATURE, FRICTION, DT)
    else:
        integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE, FRICTION, DT)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(target, integrator, openmm.Platform.getPlatformByName("Reference"))
    x0, v0 = start(kind, virtualSite)
    out = validation.serialRepetitions(lambda r: context, x0, v0, steps, reps, startStep=START_STEP)
    return out.reshape(reps, 2, n, 3)


def projections(samples, numRandom=6):
    """The columns compared: every coordinate of x (a virtual site's included) and of the massive
    particles' v, and fixed random projections."""
    massive = min(samples.shape[2], 3)
    flat = np.hstack([samples[:, 0].reshape(len(samples), -1), samples[:, 1, :massive].reshape(len(samples), -1)])
    # Standardise by fixed scales so that random projections mix positions and velocities sensibly.
    scale = np.where(np.arange(flat.shape[1]) < samples.shape[2] * 3, 0.01, 1.0)
    rng = np.random.default_rng(7)
    directions = rng.standard_normal((flat.shape[1], numRandom))
    return np.hstack([flat, (flat / scale) @ directions])


def two_sample_p(a, b):
    """Bonferroni-combined two-sample KS p-value over all projections (:func:`openmm_lsd.validation.bonferroniKS`)."""
    return validation.bonferroniKS(projections(a), projections(b))
