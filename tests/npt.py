"""Harness for the constant-pressure exactness tests: LSD + barostat against OpenMM's own serial run.

A periodic box of 12 rigid diatomic Lennard-Jones molecules (24 atoms, one
constraint each, so OpenMM's barostat scales 12 molecule centres): the target has
sigma 0.34 nm, epsilon 1.2 kJ/mol; the draft sigma 0.35 nm, epsilon 0.9 kJ/mol,
so that forces, energies and the pressure differ.  Each repetition starts from
the same state at step START_STEP and takes STEPS steps with a volume move
attempted before every FREQUENCY-th; the serial reference is a fresh Context
with ``LangevinMiddleIntegrator`` and ``MonteCarloBarostat`` per repetition (so
its move counter and adaptive volume step start where a new Context starts them,
as the LSD controller's do after ``resetAdaptation``).
"""

import numpy as np
import openmm
from openmm import app, unit

from openmm_lsd import SpeculativeSimulation, validation
from openmm_lsd.barostat import boxVolume
from openmm_lsd.integrators import LeapfrogLangevinIntegrator

TEMPERATURE = 300.0
FRICTION = 5.0
DT = 0.004
PRESSURE = 1000.0  # bar: a dense box, so that moves change the energy
FREQUENCY = 2
START_STEP = 4
STEPS = 24  # 12 attempts: the volume step adapts within a repetition
MOLECULES = 12
BOND = 0.12
EDGE = 1.15


#: the anisotropic variant: x and z scaled, at these pressures (bar); y fixed
ANISOTROPIC_PRESSURES = (600.0, 1000.0, 1500.0)


def _system(sigma, epsilon, barostat=True, anisotropic=False, frequency=FREQUENCY):
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) for row in np.eye(3) * EDGE))
    lj = openmm.NonbondedForce()
    lj.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    lj.setCutoffDistance(0.5 if anisotropic else 0.55)  # one edge may shrink by up to 1% per move
    lj.setUseDispersionCorrection(False)
    lj.setReactionFieldDielectric(1.0)
    for i in range(2 * MOLECULES):
        system.addParticle(20.0)
        lj.addParticle(0.0, sigma, epsilon)
    for m in range(MOLECULES):
        system.addConstraint(2 * m, 2 * m + 1, BOND)
        lj.addException(2 * m, 2 * m + 1, 0.0, 1.0, 0.0)
    system.addForce(lj)
    if barostat and anisotropic:
        system.addForce(openmm.MonteCarloAnisotropicBarostat(openmm.Vec3(*ANISOTROPIC_PRESSURES), TEMPERATURE,
                                                             True, False, True, frequency))
    elif barostat:
        system.addForce(openmm.MonteCarloBarostat(PRESSURE, TEMPERATURE, frequency))
    return system


def systems(anisotropic=False, frequency=FREQUENCY):
    """(target, draft); the draft carries no barostat (the controller moves both)."""
    return (_system(0.34, 1.2, anisotropic=anisotropic, frequency=frequency),
            _system(0.32, 0.7, barostat=False, anisotropic=anisotropic))


def topology():
    top = app.Topology()
    chain = top.addChain()
    for m in range(MOLECULES):
        residue = top.addResidue("DI", chain)
        a = top.addAtom("A", app.element.argon, residue)
        b = top.addAtom("B", app.element.argon, residue)
        top.addBond(a, b)
    top.setPeriodicBoxVectors(np.eye(3) * EDGE)
    return top


def start():
    """Fixed positions (molecules on a jittered 3x2x2 grid, random orientations) and velocities."""
    rng = np.random.default_rng(11)
    sites = [(i, j, k) for i in range(3) for j in range(2) for k in range(2)]
    x = []
    for (i, j, k) in sites:
        centre = (np.array([i / 3, j / 2, k / 2]) + 0.02 * rng.standard_normal(3)) * EDGE
        direction = rng.standard_normal(3)
        direction *= 0.5 * BOND / np.linalg.norm(direction)
        x += [centre - direction, centre + direction]
    x = np.array(x)
    v = rng.standard_normal(x.shape) * 0.35
    for m in range(MOLECULES):  # no relative velocity along the bond
        d = x[2 * m + 1] - x[2 * m]
        d /= np.linalg.norm(d)
        for a in (2 * m, 2 * m + 1):
            v[a] -= (v[a] @ d) * d
        mean = 0.5 * (v[2 * m] + v[2 * m + 1])
        rel = v[2 * m + 1] - mean
        v[2 * m], v[2 * m + 1] = mean - rel, mean + rel
    return x, v


def observables(positions, velocities, box, anisotropic=False):
    """Columns compared: the volume (anisotropic: and the x and z edges), every coordinate of x and v of
    molecule 0, fixed random projections."""
    flat = np.concatenate([positions.ravel(), 10 * velocities.ravel()])
    rng = np.random.default_rng(7)
    directions = rng.standard_normal((6, flat.size))
    edges = [box[0][0], box[2][2]] if anisotropic else []
    return np.concatenate([[box[0][0] * box[1][1] * box[2][2]], edges, positions[:2].ravel(),
                           velocities[:2].ravel(), directions @ flat])


def _observer(anisotropic, lastMove):
    """observe(context, chunk) for validation's samplers: after the first chunk (all steps but the last) the
    volume where ``lastMove``, after the second the observables."""
    def observe(context, chunk):
        state = context.getState(getPositions=True, getVelocities=True)
        box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
        if chunk == 0:
            return [boxVolume(box)] if lastMove else None
        return observables(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer),
                           state.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond), box,
                           anisotropic)

    return observe


def _columns(samples, lastMove):
    """With ``lastMove``, the volume change of the last step as the last column (volume after minus before)."""
    if not lastMove:
        return samples
    return np.column_stack([samples[:, 1:], samples[:, 1] - samples[:, 0]])


def lsdSamples(reps, control=None, window=4, correction="extrapolate-quadratic", seed0=5000, lag=2,
               scheme="LangevinMiddle", anisotropic=False, frequency=FREQUENCY, startStep=START_STEP, steps=STEPS,
               lastMove=False):
    """``control``: a name of :mod:`openmm_lsd.testing`'s variants.  ``lastMove``: one more column, the volume
    change of the last step (its move's size is drawn within the adapted volume step, so this column sees the
    adaptation directly).  The barostat restarts as a fresh Context's for each repetition."""
    target, draft = systems(anisotropic, frequency)
    sim = SpeculativeSimulation(topology(), target, draft, TEMPERATURE, FRICTION, DT, window=window, scheme=scheme,
                                draftCorrection=correction, correctionLag=lag, platform="Reference", seed=seed0,
                                _control=control)
    x0, v0 = start()
    samples = validation.lsdRepetitions(sim, x0, v0, (steps - 1, 1), reps, seed0=seed0, startStep=startStep,
                                        box=np.eye(3) * EDGE, observe=_observer(anisotropic, lastMove),
                                        freshBarostat=True)
    return _columns(samples, lastMove), sim.statistics


def serialSamples(reps, seed=777, scheme="LangevinMiddle", anisotropic=False, frequency=FREQUENCY,
                  startStep=START_STEP, steps=STEPS, lastMove=False):
    """OpenMM's LangevinMiddleIntegrator (or the package's leapfrog one) with OpenMM's barostat, a fresh Context
    per repetition."""
    target, _ = systems(anisotropic, frequency)
    platform = openmm.Platform.getPlatformByName("Reference")

    def contextFor(r):
        if scheme == "leapfrog":
            integrator = LeapfrogLangevinIntegrator(TEMPERATURE, FRICTION, DT)
        else:
            integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE, FRICTION, DT)
        integrator.setRandomNumberSeed(seed + r)
        target.getForce(target.getNumForces() - 1).setRandomNumberSeed(seed + 7919 * r + 1)
        return openmm.Context(target, integrator, platform)

    x0, v0 = start()
    samples = validation.serialRepetitions(contextFor, x0, v0, (steps - 1, 1), reps, startStep=startStep,
                                           observe=_observer(anisotropic, lastMove))
    return _columns(samples, lastMove)


def twoSampleP(a, b):
    """Bonferroni-combined two-sample KS p-value over every column (:func:`openmm_lsd.validation.bonferroniKS`)."""
    return validation.bonferroniKS(a, b)
