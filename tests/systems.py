"""Small Systems for tests: a few particles with custom forces, exact and cheap."""

import numpy as np
import openmm
from openmm import app

MASSES = (12.0, 4.0, 16.0)


def topology(n):
    top = app.Topology()
    chain = top.addChain()
    for i in range(n):
        residue = top.addResidue("X", chain)
        top.addAtom(f"X{i}", app.element.carbon, residue)
    return top


def toy(n=3, *, k=(400.0, 250.0, 600.0), bond=2000.0, anharmonic=0.0, shift=0.0, constraint=False,
        cmm=None, virtualSite=False, ripple=0.0, site=None):
    """n particles in anisotropic harmonic wells, bonded in a chain; optionally

    - ``anharmonic``: a quartic term in the wells,
    - ``shift``: the wells' centres shifted along x (a constant force difference),
    - ``constraint``: particles 0-1 at fixed distance 0.15 nm,
    - ``cmm``: a CMMotionRemover with that frequency,
    - ``virtualSite``: one more, massless particle at the midpoint of 0 and 1 (or defined by ``site``), held
      by a harmonic well of its own,
    - ``ripple``: amplitude (kJ/mol) of a short-wavelength (0.01 nm) cosine potential, a force error
      that changes from one step to the next, so that an offset correction cannot remove it.
    """
    system = openmm.System()
    for i in range(n):
        system.addParticle(MASSES[i % len(MASSES)])
    wells = openmm.CustomExternalForce(
        "0.5*kx*(x-x0-shift)^2 + 0.5*ky*(y-y0)^2 + 0.5*kz*(z-z0)^2 + c4*((x-x0)^4+(y-y0)^4+(z-z0)^4)")
    for name in ("kx", "ky", "kz", "x0", "y0", "z0"):
        wells.addPerParticleParameter(name)
    wells.addGlobalParameter("shift", shift)
    wells.addGlobalParameter("c4", anharmonic)
    for i in range(n):
        wells.addParticle(i, [k[0], k[1], k[2], 0.15 * i, 0.0, 0.0])
    system.addForce(wells)
    if n > 1 and bond:
        bonds = openmm.HarmonicBondForce()
        for i in range(n - 1):
            bonds.addBond(i, i + 1, 0.15, bond)
        system.addForce(bonds)
    if ripple:
        waves = openmm.CustomExternalForce("A*(cos(q*x) + cos(q*y) + cos(q*z))")
        waves.addGlobalParameter("A", ripple)
        waves.addGlobalParameter("q", 2 * np.pi / 0.01)
        for i in range(n):
            waves.addParticle(i, [])
        system.addForce(waves)
    if constraint:
        system.addConstraint(0, 1, 0.15)
    if cmm is not None:
        system.addForce(openmm.CMMotionRemover(cmm))
    if virtualSite:
        v = system.addParticle(0.0)
        system.setVirtualSite(v, site or openmm.TwoParticleAverageSite(0, 1, 0.5, 0.5))
        # A well on the site itself, so that where the site sits changes the dynamics of its parents.
        siteWell = openmm.CustomExternalForce("0.5*ksite*((x-0.1)^2 + (y-0.02)^2 + z^2)")
        siteWell.addGlobalParameter("ksite", 300.0)
        siteWell.addParticle(v, [])
        system.addForce(siteWell)
    return system


#: the standard draft of the test chain: softer wells shifted by 0.3 nm, a weaker bond, a ripple no offset follows
DRAFT_CHANGES = dict(k=(250.0, 400.0, 450.0), bond=1500.0, shift=0.3, ripple=0.15)


def toyPair(ripple=0.15, **kwargs):
    """(target, draft): the test chain and its standard draft, both with ``kwargs`` (constraint, cmm, ...)."""
    return toy(**kwargs), toy(**dict(DRAFT_CHANGES, ripple=ripple), **kwargs)


def startPositions(n=3, virtualSite=False):
    x = np.array([[0.15 * i, 0.01 * (i % 2), -0.005 * i] for i in range(n)])
    if virtualSite:
        x = np.vstack([x, 0.5 * (x[0] + x[1])])
    return x


def startVelocities(n=3, virtualSite=False):
    v = np.array([[0.3, -0.2, 0.1], [-0.4, 0.5, 0.2], [0.1, 0.1, -0.3]])[:n]
    if virtualSite:
        v = np.vstack([v, np.zeros(3)])
    return v


def poisonedForce(numParticles, after, atom, value=np.nan):
    """A PythonForce adding zero forces, then ``value`` on ``atom`` from its ``after``+1-th call on."""
    calls = {"n": 0}

    def compute(state):
        calls["n"] += 1
        forces = np.zeros((numParticles, 3))
        if calls["n"] > after:
            forces[atom] = value
        return 0.0, forces

    return openmm.PythonForce(compute)


PERIODIC_EDGE = 1.0


def periodicChain(epsilon=1.0, sigma=0.2, bond=1200.0):
    """4 particles (12 Da) in a periodic 1 nm box, a bonded chain 0.2 nm apart along x, and a soft
    repulsion ``eps*(sig/r)^6`` (global parameter ``eps``) cut off at 0.45 nm, so that particles 0 and 3
    interact through the box boundary (0.4 nm apart as images): the box and ``eps`` change the forces."""
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) for row in np.eye(3) * PERIODIC_EDGE))
    repulsion = openmm.CustomNonbondedForce("eps*(sig/r)^6")
    repulsion.addGlobalParameter("eps", epsilon)
    repulsion.addGlobalParameter("sig", sigma)
    repulsion.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
    repulsion.setCutoffDistance(0.45)
    bonds = openmm.HarmonicBondForce()
    for i in range(4):
        system.addParticle(12.0)
        repulsion.addParticle([])
    for i in range(3):
        bonds.addBond(i, i + 1, 0.2, bond)
        repulsion.addExclusion(i, i + 1)
    system.addForce(repulsion)
    system.addForce(bonds)
    return system


def periodicStart():
    """Start positions and velocities of :func:`periodicChain`."""
    x = np.array([[0.2 + 0.2 * i, 0.5 + 0.01 * (i % 2), 0.5 - 0.005 * i] for i in range(4)])
    v = np.array([[0.3, -0.2, 0.1], [-0.4, 0.5, 0.2], [0.1, 0.1, -0.3], [0.2, -0.3, 0.0]])
    return x, v


def alanineDipeptidePair():
    """(topology, target, draft, positions): openmmtools' alanine dipeptide in vacuum with rigid H bonds (constraints
    that share atoms: OpenMM's CCMA) as the target, and the same System with 5% stiffer bonds as the draft."""
    from openmmtools import testsystems

    ala = testsystems.AlanineDipeptideVacuum(constraints=app.HBonds)
    draft = openmm.XmlSerializer.clone(ala.system)
    for force in draft.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for k in range(force.getNumBonds()):
                a, b, length, strength = force.getBondParameters(k)
                force.setBondParameters(k, a, b, length, 1.05 * strength)
    return ala.topology, ala.system, draft, ala.positions
