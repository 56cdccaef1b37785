"""Targets from openmm-ml and drafts from OpenMM force fields for them.

Targets (:func:`createTarget`):

- ``'gfn2-xtb'`` / ``'gfn1-xtb'``: semi-empirical QM through openmm-ml's ``ase``
  potential and tblite's calculator (extra ``xtb``: openmmml, ase, tblite). Installs
  from PyPI and needs no downloaded weights: the offline default.
- ``'sevennet-0'``, ``'sevennet-l3i5'``, ``'sevennet-mf-0'`` (option ``modal``: ``'PBE'`` or
  ``'R2SCAN'``), ``'sevennet-0-22may2024'``: the SevenNet graph-network potentials whose
  weights ship inside the ``sevenn`` wheel (extra ``sevennet``; install torch first), through
  openmm-ml's ``ase`` potential and :class:`openmm_lsd.models.SevenNetPotential` (options
  ``device``, ``threads``). Offline too; universal (trained on the Materials Project's 89
  elements), made for metals and materials such as the copper examples.
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

The named example systems built with them are in :mod:`openmm_lsd.testsystems`.
"""

import openmm
from openmm import app

from .models import SevenNetPotential, sevennetName

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
    model : str or openmm_lsd.models.SevenNetPotential
        ``'gfn2-xtb'``, ``'gfn1-xtb'``, a shipped SevenNet model (``'sevennet-0'``, ...; see
        :data:`openmm_lsd.models.SEVENNET_MODELS`), a SevenNetPotential (the same object can
        then serve a :class:`~openmm_lsd.verifiers.BatchedVerifier`) or an openmm-ml potential
        name.
    mmSystem, mlAtoms : openmm.System, list of int
        Both or neither: ML/MM through ``createMixedSystem`` (the ML model on ``mlAtoms``).
    charge : int
        Total charge of the (ML) atoms, for xTB.
    options
        Passed to ``MLPotential`` (openmm-ml models, e.g. ``modelPath``); for xTB
        ``electronicTemperature`` (K); for SevenNet ``modal``, ``device``, ``threads``
        (:class:`~openmm_lsd.models.SevenNetPotential`).

    Returns
    -------
    openmm.System
        The target System (openmm-ml's: no constraints, a ``CMMotionRemover``).
    """
    if (mmSystem is None) != (mlAtoms is None):
        raise ValueError("ML/MM needs both mmSystem and mlAtoms")
    MLPotential = _openmmml()
    sevennet = model if isinstance(model, SevenNetPotential) else None
    key = sevennet.settings["model"] if sevennet is not None else str(model).lower()
    if sevennet is None and sevennetName(key) is not None:
        sevennet = SevenNetPotential(key, **options)
        options = {}
    if key in XTB_METHODS or sevennet is not None:
        import ase

        if sevennet is not None:
            if charge or options:
                raise ValueError(f"unknown options for a SevenNet target: {sorted(options) + ['charge'] * bool(charge)}")
            calculator = sevennet.calculator()
        else:
            calculator = xtbCalculator(key, options.pop("electronicTemperature", 300.0), charge)
            if options:
                raise ValueError(f"unknown options for an xTB target: {sorted(options)}")
        atoms = list(topology.atoms())
        chosen = atoms if mlAtoms is None else [atoms[i] for i in mlAtoms]
        if any(atom.element is None for atom in chosen):
            raise ValueError(f"{model} needs an element on every atom of the topology")
        numbers = [atom.element.atomic_number for atom in chosen]
        if sevennet is not None:
            sevennet.checkElements(numbers)
            if mmSystem is None:
                sevennet.setNumbers(numbers)  # what a BatchedVerifier given the same potential evaluates
        # A solute in solvent (ML/MM) is evaluated without periodic images: openmm-ml's default would make
        # it periodic with the whole solvent box. A periodic topology that is all ML (a water box, bulk
        # copper) is periodic, in the box of each evaluated State.
        periodic = mmSystem is None and topology.getPeriodicBoxVectors() is not None
        aseAtoms = ase.Atoms(numbers=numbers, pbc=periodic, calculator=calculator)
        potential = MLPotential("ase")
        arguments = dict(aseAtoms=aseAtoms)
        if mmSystem is not None and topology.getPeriodicBoxVectors() is not None:
            # The model sees the whole ML region in vacuum, long range included: the classical PME must not
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
        system = potential.createSystem(topology, **arguments)
    else:
        system = potential.createMixedSystem(topology, mmSystem, list(mlAtoms), **arguments)
    return system


def createDraft(topology, target, forcefield=DEFAULT_FORCEFIELD, constraints=app.HBonds, rigidWater=True,
                **createSystemOptions):
    """A draft System from OpenMM force fields for the same topology, with the target's masses.

    Non-periodic topologies get ``NoCutoff``, periodic ones ``PME`` (unless given).  The
    draft gets a ``CMMotionRemover`` exactly when the target has one, with its frequency.

    Parameters
    ----------
    topology : openmm.app.Topology
    target : openmm.System
        The target System (its masses and CMMotionRemover are copied).
    forcefield : sequence of str
        OpenMM force field files (default Amber14 and TIP3P).
    constraints, rigidWater
        As ``ForceField.createSystem`` (default ``HBonds``, rigid water).
    createSystemOptions
        Further ``createSystem`` arguments.

    Returns
    -------
    openmm.System
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

    Parameters
    ----------
    target, draft : openmm.System

    Returns
    -------
    openmm.System
        ``target``, with the draft's constraints.
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
