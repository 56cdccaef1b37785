"""The package's named example systems, as openmmtools' and pymbar's ``testsystems``: water clusters and
boxes, alanine dipeptide (in vacuum and in water, ML/MM), copper clusters and fcc boxes with a Sutton-Chen
EAM draft, and the geometry builders they use.

Named examples (:data:`EXAMPLES`, :func:`example`) return an :class:`Example` with topology, positions,
target and draft; ``openmm-lsd run --system NAME`` and the scripts in ``examples/`` use them.  Targets and
drafts come from :mod:`openmm_lsd.targets`.
"""

import dataclasses
from importlib import resources

import numpy as np
import openmm
from openmm import app, unit

from .targets import DEFAULT_FORCEFIELD, XTB_METHODS, createTarget, createDraft, constrainLike


@dataclasses.dataclass
class Example:
    """A ready system: ``topology``, ``positions`` (nm array), ``target``, ``draft`` and a description."""

    name: str
    topology: app.Topology
    positions: np.ndarray
    target: openmm.System
    draft: openmm.System
    description: str


def waterCluster(numWaters=8, spacing=0.31, seed=0):
    """A cubic-grid cluster of ``numWaters`` (<= 27) randomly oriented waters: topology and positions (nm)."""
    if not 1 <= numWaters <= 27:
        raise ValueError(f"numWaters must be between 1 and 27, got {numWaters}")
    topology = app.Topology()
    chain = topology.addChain()
    rng = np.random.default_rng(seed)
    grid = [(i, j, k) for i in range(3) for j in range(3) for k in range(3)]
    grid.sort(key=lambda g: (max(g), g))
    positions = []
    angle = np.deg2rad(104.52)
    for g in grid[:numWaters]:
        residue = topology.addResidue("HOH", chain)
        o = topology.addAtom("O", app.element.oxygen, residue)
        h1 = topology.addAtom("H1", app.element.hydrogen, residue)
        h2 = topology.addAtom("H2", app.element.hydrogen, residue)
        topology.addBond(o, h1)
        topology.addBond(o, h2)
        centre = np.array(g, dtype=float) * spacing
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        positions += [centre, centre + rotation @ [0.09572, 0, 0],
                      centre + rotation @ [0.09572 * np.cos(angle), 0.09572 * np.sin(angle), 0]]
    return topology, np.array(positions)


def minimizeWith(system, topology, positions, iterations=500, platform=None):
    """Positions (nm array) minimized with ``system`` (use the cheap draft: no target calls); on ``platform``
    (a name; default CPU for periodic Systems, else Reference, which is bitwise reproducible)."""
    periodic = topology.getPeriodicBoxVectors() is not None
    platform = openmm.Platform.getPlatformByName(platform or ("CPU" if periodic else "Reference"))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform)
    if periodic:
        context.setPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, iterations)
    return np.asarray(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))


def water(numWaters=8, model="gfn2-xtb"):
    """Rigid waters in vacuum: xTB (or openmm-ml) target with the draft's rigid-water constraints, TIP3P draft.

    Minimized with the draft (no target calls). This is ``openmm-lsd run``'s default.
    """
    topology, positions = waterCluster(numWaters)
    target = createTarget(topology, model)
    draft = createDraft(topology, target, forcefield=("amber14/tip3p.xml",))
    constrainLike(target, draft)
    return Example("water", topology, minimizeWith(draft, topology, positions), target, draft,
                   f"{numWaters} rigid waters in vacuum, {model} target, rigid TIP3P draft")


def waterBoxTopology(edge):
    """OpenMM's pre-equilibrated TIP3P water cut to a cubic box of ``edge`` nm: topology (with the box) and
    positions (nm array)."""
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(app.ForceField("amber14/tip3p.xml"), model="tip3p",
                        boxSize=openmm.Vec3(edge, edge, edge) * unit.nanometer)
    return modeller.topology, np.asarray(modeller.positions.value_in_unit(unit.nanometer))


def tip3p(topology, cutoff, chargeScale=1.0):
    """Rigid TIP3P with PME (``cutoff`` nm) for a water box, its charges scaled by ``chargeScale``: a cheap
    classical target/draft pair for tests and benchmarks (e.g. 1.0 and 0.97)."""
    system = app.ForceField("amber14/tip3p.xml").createSystem(topology, nonbondedMethod=app.PME,
                                                              nonbondedCutoff=cutoff, rigidWater=True)
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            for i in range(force.getNumParticles()):
                q, sigma, epsilon = force.getParticleParameters(i)
                force.setParticleParameters(i, q * chargeScale, sigma, epsilon)
    return system


def waterBox(model="gfn2-xtb", edge=1.0, pressure=1.0, temperature=300.0, frequency=25):
    """Rigid waters in a periodic box at constant pressure (``openmm-lsd run --system water-box``).

    OpenMM's pre-equilibrated TIP3P box cut to ``edge`` nm (1.0 nm: 32 waters); the
    target is periodic xTB (or an openmm-ml potential) with rigid waters and a
    ``MonteCarloBarostat`` at ``pressure`` bar and ``temperature`` K, attempting a move
    every ``frequency`` steps (OpenMM's default 25); the draft is rigid TIP3P with PME
    (cutoff just under half the box) and no barostat (the controller makes the
    target's moves). Minimized with the draft. Periodic GFN2-xTB costs ~3 s per call
    for 32 waters on 2 CPU cores: this is an example to run, not a benchmark.
    """
    topology, positions = waterBoxTopology(edge)
    target = createTarget(topology, model)
    target.setDefaultPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
    draft = createDraft(topology, target, forcefield=("amber14/tip3p.xml",),
                        nonbondedCutoff=min(0.9, 0.49 * edge) * unit.nanometer)
    constrainLike(target, draft)
    target.addForce(openmm.MonteCarloBarostat(pressure * unit.bar, temperature * unit.kelvin, frequency))
    return Example("water-box", topology, minimizeWith(draft, topology, positions), target, draft,
                   f"{topology.getNumResidues()} rigid waters in a periodic box at {pressure:g} bar, {model} target, "
                   f"rigid TIP3P draft (PME), MonteCarloBarostat every {frequency} steps")


def alanineDipeptidePDB():
    """The package's alanine dipeptide (ACE-ALA-NME, 22 atoms, built with OpenMM's Modeller and minimized)."""
    return app.PDBFile(str(resources.files("openmm_lsd") / "data" / "alanine-dipeptide.pdb"))


def alanineDipeptide(model="gfn2-xtb"):
    """Alanine dipeptide in vacuum: xTB (or openmm-ml) target with HBonds constraints, Amber14 draft."""
    pdb = alanineDipeptidePDB()
    target = createTarget(pdb.topology, model)
    draft = createDraft(pdb.topology, target, forcefield=("amber14-all.xml",))
    constrainLike(target, draft)
    positions = np.asarray(pdb.positions.value_in_unit(unit.nanometer))
    return Example("alanine-dipeptide", pdb.topology, minimizeWith(draft, pdb.topology, positions), target, draft,
                   f"alanine dipeptide in vacuum, {model} target, Amber14 draft, HBonds")


def alanineDipeptideWater(model="gfn2-xtb", padding=0.9):
    """Alanine dipeptide in a TIP3P box as ML/MM: the solute with ``model``, the rest Amber14/TIP3P (PME).

    The draft is the all-classical System, so force differences live on the 22 solute atoms.
    """
    pdb = alanineDipeptidePDB()
    forcefield = app.ForceField(*DEFAULT_FORCEFIELD)
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.addSolvent(forcefield, model="tip3p", padding=padding * unit.nanometer)
    mm = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                                 constraints=app.HBonds, rigidWater=True)
    solute = [atom.index for atom in modeller.topology.atoms() if atom.residue.name != "HOH"]
    target = constrainLike(createTarget(modeller.topology, model, mmSystem=mm, mlAtoms=solute), mm)
    positions = np.asarray(modeller.positions.value_in_unit(unit.nanometer))
    return Example("alanine-dipeptide-water", modeller.topology, minimizeWith(mm, modeller.topology, positions),
                   target, mm, f"alanine dipeptide in {modeller.topology.getNumResidues() - 3} TIP3P waters, "
                               f"ML/MM with the solute ({len(solute)} atoms) as {model}, Amber14/TIP3P draft (PME)")


# ---- copper -------------------------------------------------------------------------------------

#: Sutton-Chen parameters for copper (A. P. Sutton and J. Chen, Philos. Mag. Lett. 61, 139 (1990)):
#: n = 9, m = 6, a = 3.61 A (the fcc lattice constant), eps = 1.2382e-2 eV, c = 39.432.
SUTTON_CHEN_CU = dict(n=9, m=6, a=0.361, eps=1.2382e-2 * 96.485332, c=39.432)  # nm, kJ/mol


def suttonChenForce(cutoff=None, periodic=False, n=9, m=6, a=0.361, eps=SUTTON_CHEN_CU["eps"], c=39.432):
    """The Sutton-Chen EAM energy as a ``CustomGBForce``.

    E = eps [ sum_{i<j} (a/r_ij)^n - c sum_i sqrt(rho_i) ],  rho_i = sum_{j != i} (a/r_ij)^m

    With ``cutoff`` (nm) both sums are truncated there (no switching: copper's
    (a/r)^6 density is 1.2e-3 of its nearest-neighbour value at 0.9 nm);
    ``periodic`` uses the minimum image.
    """
    force = openmm.CustomGBForce()
    for name, value in (("scN", n), ("scM", m), ("scA", a), ("scEps", eps), ("scC", c)):
        force.addGlobalParameter(name, value)
    force.addComputedValue("rho", "(scA/r)^scM", openmm.CustomGBForce.ParticlePairNoExclusions)
    force.addEnergyTerm("scEps*(scA/r)^scN", openmm.CustomGBForce.ParticlePairNoExclusions)
    force.addEnergyTerm("-scEps*scC*sqrt(rho)", openmm.CustomGBForce.SingleParticle)
    if cutoff is None:
        force.setNonbondedMethod(openmm.CustomGBForce.NoCutoff)
    else:
        force.setNonbondedMethod(openmm.CustomGBForce.CutoffPeriodic if periodic
                                 else openmm.CustomGBForce.CutoffNonPeriodic)
        force.setCutoffDistance(cutoff)
    return force


def icosahedron(shells=1, spacing=0.2556):
    """Mackay icosahedron positions (nm): 13, 55, 147 atoms for 1, 2, 3 shells; ``spacing`` the radial step."""
    if shells not in (1, 2, 3):
        raise ValueError(f"shells must be 1, 2 or 3 (13, 55, 147 atoms), got {shells}")
    phi = (1 + 5 ** 0.5) / 2
    vertices = np.array([(0, s1, s2 * phi) for s1 in (-1, 1) for s2 in (-1, 1)]
                        + [(s1, s2 * phi, 0) for s1 in (-1, 1) for s2 in (-1, 1)]
                        + [(s2 * phi, 0, s1) for s1 in (-1, 1) for s2 in (-1, 1)], dtype=float)
    vertices /= np.linalg.norm(vertices[0])
    edges = [(i, j) for i in range(12) for j in range(i + 1, 12)
             if abs(np.linalg.norm(vertices[i] - vertices[j]) - np.linalg.norm(vertices[0] - vertices[4])) < 1e-6
             or abs(np.linalg.norm(vertices[i] - vertices[j]) - min(np.linalg.norm(vertices[0] - v)
                                                                   for v in vertices[1:])) < 1e-6]
    faces = [(i, j, k) for i, j in edges for k in range(j + 1, 12) if (i, k) in edges and (j, k) in edges]
    points = [np.zeros(3)]
    for shell in range(1, shells + 1):
        layer = {tuple(np.round(v * shell, 9)) for v in vertices}
        for i, j in edges:  # points along edges
            for t in range(1, shell):
                layer.add(tuple(np.round((vertices[i] * (shell - t) + vertices[j] * t), 9)))
        for i, j, k in faces:  # points inside faces
            for u in range(1, shell):
                for v in range(1, shell - u):
                    w = shell - u - v
                    layer.add(tuple(np.round(vertices[i] * u + vertices[j] * v + vertices[k] * w, 9)))
        points += [np.array(p) for p in sorted(layer)]
    return np.array(points) * spacing


def fccBox(cells=2, latticeConstant=0.3615):
    """A periodic fcc box of ``cells``^3 conventional cells (4 cells^3 atoms): positions (nm) and box edge."""
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    points = [(np.array([i, j, k]) + b) * latticeConstant
              for i in range(cells) for j in range(cells) for k in range(cells) for b in basis]
    return np.array(points), cells * latticeConstant


def _metalTopology(count, box=None):
    topology = app.Topology()
    chain = topology.addChain()
    for _ in range(count):
        residue = topology.addResidue("CU", chain)
        topology.addAtom("Cu", app.element.copper, residue)
    if box is not None:
        topology.setPeriodicBoxVectors([openmm.Vec3(box, 0, 0), openmm.Vec3(0, box, 0), openmm.Vec3(0, 0, box)])
    return topology


def copper(kind="cluster", size=13, model="gfn1-xtb", electronicTemperature=3000.0):
    """Copper: GFN1-xTB target (tblite via openmm-ml's ``ase`` potential), Sutton-Chen EAM draft.

    Parameters
    ----------
    kind : 'cluster' or 'bulk'
        An icosahedral cluster of ``size`` 13, 55 or 147 atoms (nearest-neighbour
        spacing 0.2556 nm, copper's), or a periodic fcc box of ``size`` atoms (32, 108,
        256: 2, 3, 4 conventional cells, lattice constant 0.3615 nm).
    model : str
        The target: ``'gfn1-xtb'`` (default; GFN2-xTB does not converge its SCF on
        distorted Cu13) or any :func:`createTarget` model.
    electronicTemperature : float
        K, for xTB (3000 K smooths the metal's Fermi level for SCF convergence).

    The draft is Sutton-Chen (:data:`SUTTON_CHEN_CU`, A. P. Sutton and J. Chen, Philos.
    Mag. Lett. 61, 139 (1990)) as a ``CustomGBForce``: no cutoff for clusters; for boxes
    the minimum image with a cutoff of just under half the box (at most 0.9 nm). Both
    Systems have openmm-ml's CMMotionRemover (the engine requires the draft to carry the
    target's, at the same frequency) and the target's masses.
    """
    if kind == "cluster":
        shells = {13: 1, 55: 2, 147: 3}.get(size)
        if shells is None:
            raise ValueError(f"copper clusters have 13, 55 or 147 atoms, got {size}")
        positions, box = icosahedron(shells), None
    elif kind == "bulk":
        cells = {32: 2, 108: 3, 256: 4}.get(size)
        if cells is None:
            raise ValueError(f"copper fcc boxes have 32, 108 or 256 atoms, got {size}")
        positions, box = fccBox(cells)
    else:
        raise ValueError(f"kind must be 'cluster' or 'bulk', got {kind!r}")
    topology = _metalTopology(len(positions), box)
    if str(model).lower() in XTB_METHODS:
        target = createTarget(topology, model, electronicTemperature=electronicTemperature)
    else:
        target = createTarget(topology, model)
    if box is not None:
        target.setDefaultPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
    draft = openmm.System()
    for i in range(target.getNumParticles()):
        draft.addParticle(target.getParticleMass(i))
    force = suttonChenForce(cutoff=None if box is None else min(0.9, 0.499 * box), periodic=box is not None)
    for _ in range(len(positions)):
        force.addParticle([])
    draft.addForce(force)
    if box is not None:
        draft.setDefaultPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
    for f in target.getForces():
        if isinstance(f, openmm.CMMotionRemover):
            draft.addForce(openmm.CMMotionRemover(f.getFrequency()))
    name = f"copper-{kind}"
    positions = minimizeWith(draft, topology, positions, iterations=200)
    return Example(name, topology, positions, target, draft,
                   f"Cu{len(positions)} {'icosahedral cluster' if box is None else 'periodic fcc box'}, "
                   f"{model} target, Sutton-Chen EAM draft")


def copperCluster(model="gfn1-xtb", size=13):
    """``openmm-lsd run --system copper-cluster``: :func:`copper` ('cluster')."""
    return copper("cluster", size, model if model != "gfn2-xtb" else "gfn1-xtb")


def copperBulk(model="gfn1-xtb", size=32):
    """``openmm-lsd run --system copper-bulk``: :func:`copper` ('bulk')."""
    return copper("bulk", size, model if model != "gfn2-xtb" else "gfn1-xtb")


EXAMPLES = {"water": water, "water-box": waterBox, "alanine-dipeptide": alanineDipeptide,
            "alanine-dipeptide-water": alanineDipeptideWater, "copper-cluster": copperCluster, "copper-bulk": copperBulk}


def example(name, model="gfn2-xtb", **options):
    """Build the named example (see :data:`EXAMPLES`) with the given target model."""
    if name not in EXAMPLES:
        raise ValueError(f"unknown example system {name!r}; choose one of {sorted(EXAMPLES)}")
    return EXAMPLES[name](model=model, **options)
