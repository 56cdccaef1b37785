"""What the commands share: building the system from the options, the simulation, output folders, plots."""

import json
import math
import os
from pathlib import Path

import numpy as np
import openmm
from openmm import app, unit

from .. import __version__, targets, testsystems
from ..simulation import SpeculativeSimulation


class UsageError(Exception):
    """A bad argument, file or missing extra: reported as one line, before any work starts."""


class RunFailed(Exception):
    """The run stopped at its last accepted step (a fault named in the message)."""


# ---- systems -------------------------------------------------------------------------------------

def targetModel(args):
    """What ``--target`` names, for :func:`openmm_lsd.createTarget`: a SevenNet target as its
    :class:`~openmm_lsd.models.SevenNetPotential` (the object a batched verifier evaluates too)."""
    from ..models import SevenNetPotential, sevennetName

    fidelity = getattr(args, "fidelity", None)
    if sevennetName(args.target) is None:
        if fidelity is not None:
            raise UsageError(f"--fidelity applies to --target sevennet-mf-0, not {args.target}")
        return args.target
    from ..verifiers.mpi import assignDevice, launchedUnderMPI

    if launchedUnderMPI():
        assignDevice()  # one GPU per rank where CUDA_VISIBLE_DEVICES or OPENMM_LSD_DEVICES lists several
    try:
        return SevenNetPotential(args.target, modal=fidelity)
    except (ImportError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def buildSystem(args):
    """An :class:`openmm_lsd.testsystems.Example` from ``--system`` or ``--pdb``; ``args.model`` is set to
    the target model (:func:`targetModel`)."""
    args.model = targetModel(args)
    try:
        if args.pdb:
            return _fromPDB(args)
        options = {}
        if args.system == "water":
            options = {"numWaters": args.waters}
        elif args.system == "water-box":
            options = {"edge": args.box_edge, "pressure": args.pressure, "temperature": args.temperature,
                       "frequency": args.barostat_frequency}
        return testsystems.example(args.system, model=args.model, **options)
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _fromPDB(args):
    path = Path(args.pdb)
    if not path.is_file():
        raise UsageError(f"no such PDB file: {path}")
    try:
        pdb = app.PDBFile(str(path))
    except Exception as exc:
        raise UsageError(f"cannot read PDB file {path}: {exc}") from None
    if pdb.topology.getNumAtoms() == 0:
        raise UsageError(f"PDB file {path} has no atoms")
    topology = pdb.topology
    positions = np.asarray(pdb.positions.value_in_unit(unit.nanometer))
    forcefield = tuple(args.forcefield)
    if args.ml_atoms == "all":
        target = targets.createTarget(topology, args.model)
        draft = targets.createDraft(topology, target, forcefield=forcefield)
        targets.constrainLike(target, draft)
        description = f"{path.name}: {args.target} target, {' + '.join(forcefield)} draft"
    else:
        solute = [a.index for a in topology.atoms() if a.residue.name not in ("HOH", "WAT", "NA", "CL", "K")]
        if not solute or len(solute) == topology.getNumAtoms():
            raise UsageError("--ml-atoms solute needs a PDB with both solute and water/ions")
        try:
            ff = app.ForceField(*forcefield)
        except Exception as exc:
            raise UsageError(f"cannot load force field {list(forcefield)}: {exc}") from None
        periodic = topology.getPeriodicBoxVectors() is not None
        mm = ff.createSystem(topology, nonbondedMethod=app.PME if periodic else app.NoCutoff,
                             constraints=app.HBonds, rigidWater=True)
        target = targets.constrainLike(targets.createTarget(topology, args.model, mmSystem=mm, mlAtoms=solute), mm)
        draft = mm
        description = f"{path.name}: ML/MM, {len(solute)} solute atoms as {args.target}, {' + '.join(forcefield)}"
    positions = testsystems.minimizeWith(draft, topology, positions)
    return testsystems.Example(path.stem, topology, positions, target, draft, description)


def makeSimulation(args, example, _control=None, verifier=None):
    if getattr(args, "batched", False):
        from ..models import SevenNetPotential
        from ..verifiers import BatchedVerifier

        if not isinstance(getattr(args, "model", None), SevenNetPotential) or args.ml_atoms != "all":
            raise UsageError("--batched needs a SevenNet target on all atoms (--target sevennet-0, ...)")
        verifier = BatchedVerifier(args.model)
    return SpeculativeSimulation(
        example.topology, example.target, example.draft, args.temperature * unit.kelvin,
        args.friction / unit.picosecond, args.timestep * unit.femtoseconds, window=args.window, scheme=args.scheme,
        draftCorrection=args.correction, correctionLag=args.lag, platform=args.platform, seed=args.seed,
        verifier=verifier, verifierTimeout=args.verifier_timeout, _control=_control)


def checkNumbers(args):
    for name in ("temperature", "friction", "timestep"):
        value = getattr(args, name)
        if not (value > 0 and math.isfinite(value)):
            raise UsageError(f"--{name} must be a positive number, got {value}")
    if args.timestep > 10:
        raise UsageError(f"--timestep is in femtoseconds; {args.timestep} fs is not a usable Langevin step")
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.window != "auto" and not 1 <= args.window <= 1000:
        raise UsageError(f"--window must be between 1 and 1000, got {args.window}")
    if args.lag is not None and args.lag < 1:
        raise UsageError(f"--lag must be at least 1, got {args.lag}")
    if not (args.verifier_timeout > 0 and math.isfinite(args.verifier_timeout)):
        raise UsageError(f"--verifier-timeout must be a positive number of seconds, got {args.verifier_timeout}")
    if args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.pdb and args.system_given:
        raise UsageError("give either --system or --pdb, not both")
    edge, pressure = getattr(args, "box_edge", 1.0), getattr(args, "pressure", 1.0)
    if not 0.6 <= edge <= 10:
        raise UsageError(f"--box-edge must be between 0.6 and 10 nm, got {edge}")
    if not (pressure > 0 and math.isfinite(pressure)):
        raise UsageError(f"--pressure must be a positive number of bar, got {pressure}")
    if getattr(args, "barostat_frequency", 25) < 1:
        raise UsageError(f"--barostat-frequency must be at least 1, got {args.barostat_frequency}")


def prepareOutput(folder, names, overwrite):
    """Create ``folder`` and check it is writable, refusing to overwrite a finished run's files."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {folder} is not writable")
    present = [n for n in names if (folder / n).exists()]
    if present and not overwrite:
        raise UsageError(f"output folder {folder} already holds {', '.join(present)}; choose another --output "
                         f"or pass --overwrite")
    return folder


def writeJSON(path, data):
    """Write atomically: a finished file or none."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    os.replace(tmp, path)


def settings(args, example):
    return {"system": example.name, "description": example.description, "target": args.target,
            "temperature_K": args.temperature, "friction_per_ps": args.friction, "timestep_fs": args.timestep,
            "scheme": args.scheme, "window": args.window, "draftCorrection": args.correction, "lag": args.lag,
            "seed": args.seed, "platform": args.platform, "atoms": example.topology.getNumAtoms(),
            "version": __version__, **(_barostatSettings(example) or {})}


def barostatOf(example):
    from ..barostat import findBarostat

    return findBarostat(example.target)


def _barostatSettings(example):
    barostat = barostatOf(example)
    if barostat is None:
        return None
    pressure = barostat.getDefaultPressure().value_in_unit(unit.bar)
    return {"pressure_bar": pressure if isinstance(pressure, float) else list(pressure),
            "barostat_frequency": barostat.getFrequency(), "barostat": type(barostat).__name__}


def initialVelocities(example, args):
    context = openmm.Context(example.target, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    if example.topology.getPeriodicBoxVectors() is not None:
        context.setPeriodicBoxVectors(*example.topology.getPeriodicBoxVectors())
    context.setPositions(example.positions)
    context.setVelocitiesToTemperature(args.temperature * unit.kelvin, args.seed)
    context.applyVelocityConstraints(1e-6)
    return context.getState(getVelocities=True).getVelocities(asNumpy=True)


def pyplot():
    """matplotlib's pyplot on the Agg backend, or None where matplotlib is missing (plots are then skipped)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plotAcceptance(path, measured, predicted, title, curve=None):
    """Bar plot of acceptance by window position (measured) with the mean 2 Phi(-|m|/2) (predicted), and
    where given the learning curve: acceptance per block of steps against the run's wall time."""
    plt = pyplot()
    if plt is None:
        return None
    points = [c for c in (curve or ()) if c["acceptance"] is not None]
    fig, axes = plt.subplots(1, 2 if points else 1, figsize=(10 if points else 6, 3.5))
    ax = axes[0] if points else axes
    positions = np.arange(len(measured))
    ax.bar(positions, measured, color="tab:blue", alpha=0.7, label="accepted fraction")
    if predicted is not None:
        ax.plot(positions, predicted, "o-", color="tab:red", label="mean 2Φ(-|m|/2)")
    ax.set_xlabel("window position")
    ax.set_ylabel("acceptance")
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    if points:
        other = axes[1]
        other.plot([c["seconds"] for c in points], [c["acceptance"] for c in points], "o-", color="tab:green")
        other.set_xlabel("run time (s)")
        other.set_ylabel("acceptance per block of steps")
        other.set_ylim(0, 1.05)
        other.set_title("learning curve", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
