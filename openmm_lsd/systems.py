"""Targets from openmm-ml, drafts from OpenMM force fields, and the package's named example systems.

Targets (:func:`createTarget`):

- ``'gfn2-xtb'`` / ``'gfn1-xtb'``: semi-empirical QM through openmm-ml's ``ase``
  potential and tblite's calculator (extra ``xtb``: openmmml, ase, tblite). Installs
  from PyPI and needs no downloaded weights: the offline default.
- any other name is an openmm-ml potential (``'ani2x'``, ``'mace-off23-small'``,
  ``'aimnet2'``, ...; keyword arguments such as ``modelPath`` pass through). Their
  weights download on first use, so they need internet once.
- with ``mmSystem`` and ``mlAtoms``, an ML/MM System from openmm-ml's
  ``createMixedSystem``: the ML model on ``mlAtoms``, the classical System elsewhere.
  The classical System itself is then the natural draft: force differences live only
  on the ML atoms (DESIGN.md section 7).

openmm-ml's ``createSystem`` has no constraints and a ``CMMotionRemover``; a rigid
draft needs the same constraints in the target (the engine refuses a mismatch), so
:func:`createDraft` returns a draft built from force fields with the target's masses,
and :func:`constrainLike` gives the target the draft's constraints. The target then is
"the model with rigid waters / H bonds": the serial reference run uses the same System.
The examples' xTB solutes and waters are constrained this way (HBonds, rigid water).

Named examples (:data:`EXAMPLES`, :func:`example`) return an :class:`Example` with
topology, positions, target and draft; ``openmm-lsd run --system NAME`` and the
scripts in ``examples/`` use them.
"""

import dataclasses
from importlib import resources

import numpy as np
import openmm
from openmm import app, unit

DEFAULT_FORCEFIELD = ("amber14-all.xml", "amber14/tip3p.xml")
XTB_METHODS = {"gfn2-xtb": "GFN2-xTB", "gfn1-xtb": "GFN1-xTB"}
#: openmm-ml potentials whose weights are downloaded at run time (not available offline)
DOWNLOADED_MODELS = ("ani1ccx", "ani2x", "mace-off23-small", "mace-off23-medium", "mace-off23-large",
                     "mace-off24-medium", "aimnet2")


def _openmmml():
    try:
        from openmmml import MLPotential
    except ImportError as exc:
        raise ImportError("ML and xTB targets need openmm-ml: pip install 'openmm-lsd[xtb]'") from exc
    return MLPotential


def xtbCalculator(method="gfn2-xtb", electronicTemperature=300.0, charge=0):
    """tblite's ASE calculator for ``'gfn2-xtb'`` or ``'gfn1-xtb'`` (electronic temperature in K, total charge)."""
    key = str(method).lower()
    if key not in XTB_METHODS:
        raise ValueError(f"unknown xTB method {method!r}; choose one of {sorted(XTB_METHODS)}")
    try:
        from tblite.ase import TBLite
    except ImportError as exc:
        raise ImportError("xTB targets need tblite and ase: pip install 'openmm-lsd[xtb]'") from exc

    class FreshTBLite(TBLite):
        """tblite's calculator with every SCF started from the same guess, not from the previous
        call's wavefunction: forces are then a function of the positions alone, so that verifier
        ranks, which see different sequences of positions, compute the same bits as one process."""

        def calculate(self, *args, **kwargs):
            self._res = None
            return super().calculate(*args, **kwargs)

    return FreshTBLite(method=XTB_METHODS[key], electronic_temperature=float(electronicTemperature), charge=int(charge),
                  verbosity=0)


def createTarget(topology, model="gfn2-xtb", mmSystem=None, mlAtoms=None, charge=0, **options):
    """The target System for ``topology``: an xTB method or an openmm-ml potential, optionally as ML/MM.

    Parameters
    ----------
    model : str
        ``'gfn2-xtb'``, ``'gfn1-xtb'`` or an openmm-ml potential name.
    mmSystem, mlAtoms : openmm.System, list of int
        Both or neither: ML/MM through ``createMixedSystem`` (the ML model on ``mlAtoms``).
    charge : int
        Total charge of the (ML) atoms, for xTB.
    options
        Passed to ``MLPotential`` (openmm-ml models, e.g. ``modelPath``) or, for xTB,
        ``electronicTemperature`` (K).
    """
    if (mmSystem is None) != (mlAtoms is None):
        raise ValueError("ML/MM needs both mmSystem and mlAtoms")
    MLPotential = _openmmml()
    key = str(model).lower()
    if key in XTB_METHODS:
        import ase

        calculator = xtbCalculator(key, options.pop("electronicTemperature", 300.0), charge)
        if options:
            raise ValueError(f"unknown options for an xTB target: {sorted(options)}")
        atoms = list(topology.atoms())
        chosen = atoms if mlAtoms is None else [atoms[i] for i in mlAtoms]
        if any(atom.element is None for atom in chosen):
            raise ValueError("xTB needs an element on every atom of the topology")
        # A solute in solvent (ML/MM) is evaluated without periodic images: openmm-ml's default would make
        # it periodic with the whole solvent box. A periodic topology that is all xTB (a water box, bulk
        # copper) is periodic, in the box of each evaluated State.
        periodic = mmSystem is None and topology.getPeriodicBoxVectors() is not None
        aseAtoms = ase.Atoms(numbers=[atom.element.atomic_number for atom in chosen], pbc=periodic,
                             calculator=calculator)
        potential = MLPotential("ase")
        arguments = dict(aseAtoms=aseAtoms)
        if mmSystem is not None and topology.getPeriodicBoxVectors() is not None:
            # xTB sees the whole ML region in vacuum, long range included: the classical PME must not
            # count ML-ML electrostatics again.
            arguments["mlLongRange"] = True
    else:
        if options.pop("electronicTemperature", None) is not None or charge:
            raise ValueError("electronicTemperature and charge apply to xTB targets only")
        try:
            potential = MLPotential(model, **options)
        except Exception as exc:
            raise ValueError(f"openmm-ml cannot create the potential {model!r}: {exc}") from exc
        arguments = {}
    if mmSystem is None:
        return potential.createSystem(topology, **arguments)
    return potential.createMixedSystem(topology, mmSystem, list(mlAtoms), **arguments)


def createDraft(topology, target, forcefield=DEFAULT_FORCEFIELD, constraints=app.HBonds, rigidWater=True,
                **createSystemOptions):
    """A draft System from OpenMM force fields for the same topology, with the target's masses.

    Non-periodic topologies get ``NoCutoff``, periodic ones ``PME`` (unless given).  The
    draft gets a ``CMMotionRemover`` exactly when the target has one, with its frequency.
    """
    try:
        ff = app.ForceField(*forcefield)
    except Exception as exc:
        raise ValueError(f"cannot load force field {list(forcefield)}: {exc}") from exc
    if "nonbondedMethod" not in createSystemOptions:
        createSystemOptions["nonbondedMethod"] = app.PME if topology.getPeriodicBoxVectors() is not None else app.NoCutoff
    try:
        draft = ff.createSystem(topology, constraints=constraints, rigidWater=rigidWater, removeCMMotion=False,
                                **createSystemOptions)
    except Exception as exc:
        raise ValueError(f"force field {list(forcefield)} cannot build a draft for this topology: {exc}") from exc
    if draft.getNumParticles() != target.getNumParticles():
        raise ValueError(f"the draft has {draft.getNumParticles()} particles, the target {target.getNumParticles()}")
    for i in range(target.getNumParticles()):
        draft.setParticleMass(i, target.getParticleMass(i))
    for force in target.getForces():
        if isinstance(force, openmm.CMMotionRemover):
            draft.addForce(openmm.CMMotionRemover(force.getFrequency()))
    return draft


def constrainLike(target, draft):
    """Add to ``target`` (in place; returned) each of the draft's constraints that it lacks.

    openmm-ml Systems have no constraints (``createSystem``) or lose those inside the ML
    region (``createMixedSystem``); the engine needs the target's and the draft's to be
    the same.  A target constraint that the draft lacks is an error.
    """
    def pairs(system):
        out = {}
        for k in range(system.getNumConstraints()):
            i, j, d = system.getConstraintParameters(k)
            out[(min(i, j), max(i, j))] = d
        return out

    have, want = pairs(target), pairs(draft)
    extra = sorted(set(have) - set(want))
    if extra:
        raise ValueError(f"the target has constraints the draft lacks ({extra[:5]}); build both with the same ones")
    for (i, j), d in want.items():
        if (i, j) not in have:
            target.addConstraint(i, j, d)
    return target


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
