"""``openmm-lsd run``, ``estimate`` and ``validate``: the work behind the command line (see :mod:`openmm_lsd.cli`).

Every rank of an MPI launch runs the same function; ranks > 0 build the same
Systems, then serve target evaluations inside the ``SpeculativeSimulation``
constructor and end there, so everything after it runs on rank 0 only.
"""

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import openmm
from openmm import app, unit

from . import __version__, targets, testsystems
from .simulation import SpeculativeSimulation


class UsageError(Exception):
    """A bad argument, file or missing extra: reported as one line, before any work starts."""


class RunFailed(Exception):
    """The run stopped at its last accepted step (a fault named in the message)."""


# ---- systems -------------------------------------------------------------------------------------

def buildSystem(args):
    """An :class:`openmm_lsd.testsystems.Example` from ``--system`` or ``--pdb``."""
    try:
        if args.pdb:
            return _fromPDB(args)
        options = {}
        if args.system == "water":
            options = {"numWaters": args.waters}
        elif args.system == "water-box":
            options = {"edge": args.box_edge, "pressure": args.pressure, "temperature": args.temperature,
                       "frequency": args.barostat_frequency}
        return testsystems.example(args.system, model=args.target, **options)
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
        target = targets.createTarget(topology, args.target)
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
        target = targets.constrainLike(targets.createTarget(topology, args.target, mmSystem=mm, mlAtoms=solute), mm)
        draft = mm
        description = f"{path.name}: ML/MM, {len(solute)} solute atoms as {args.target}, {' + '.join(forcefield)}"
    positions = testsystems.minimizeWith(draft, topology, positions)
    return testsystems.Example(path.stem, topology, positions, target, draft, description)


def makeSimulation(args, example, _control=None, verifier=None):
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


def _barostat(example):
    from .barostat import findBarostat

    return findBarostat(example.target)


def _barostatSettings(example):
    barostat = _barostat(example)
    if barostat is None:
        return None
    pressure = barostat.getDefaultPressure().value_in_unit(unit.bar)
    return {"pressure_bar": pressure if isinstance(pressure, float) else list(pressure),
            "barostat_frequency": barostat.getFrequency(), "barostat": type(barostat).__name__}


def _progress(total, disable):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="step", disable=disable, file=sys.stderr, dynamic_ncols=True)


def _initialVelocities(example, args):
    context = openmm.Context(example.target, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    if example.topology.getPeriodicBoxVectors() is not None:
        context.setPeriodicBoxVectors(*example.topology.getPeriodicBoxVectors())
    context.setPositions(example.positions)
    context.setVelocitiesToTemperature(args.temperature * unit.kelvin, args.seed)
    context.applyVelocityConstraints(1e-6)
    return context.getState(getVelocities=True).getVelocities(asNumpy=True)


# ---- run -----------------------------------------------------------------------------------------

RUN_FILES = ("topology.pdb", "trajectory.dcd", "log.csv", "statistics.csv", "summary.json", "acceptance.png",
             "checkpoint.lsd")
GROWING = ("trajectory.dcd", "log.csv", "statistics.csv")


def _flush(reporters):
    for reporter in reporters:
        out = getattr(reporter, "_out", None)
        if out is not None and hasattr(out, "flush"):
            out.flush()


def _saveRunCheckpoint(sim, folder, elapsed):
    _flush(sim.reporters)
    sizes = {name: (folder / name).stat().st_size for name in GROWING if (folder / name).exists()}
    header = (folder / "trajectory.dcd").read_bytes()[:24].hex() if (folder / "trajectory.dcd").exists() else None
    sim.saveCheckpoint(str(folder / "checkpoint.lsd"),
                       extra={"sizes": sizes, "dcdHeader": header, "wallSeconds": elapsed})


def _rewind(folder, extra):
    """Cut the growing output files back to what they held at the checkpoint (no gaps, no duplicates)."""
    for name in GROWING:
        path = folder / name
        size = extra["sizes"].get(name)
        if size is None:
            if path.exists():
                path.unlink()
            continue
        if not path.exists() or path.stat().st_size < size:
            raise UsageError(f"{path} is shorter than at the checkpoint: it was changed or lost; cannot resume")
        with open(path, "r+b") as f:
            f.truncate(size)
            if name == "trajectory.dcd" and extra.get("dcdHeader"):
                f.seek(0)
                f.write(bytes.fromhex(extra["dcdHeader"]))  # frame count and last step at the checkpoint


def run(args):
    checkNumbers(args)
    if args.report_interval < 1:
        raise UsageError(f"--report-interval must be at least 1, got {args.report_interval}")
    interval = args.report_interval
    every = args.checkpoint_interval
    if every < 0 or (every and every % interval):
        raise UsageError(f"--checkpoint-interval must be 0 (off) or a multiple of --report-interval ({interval}), "
                         f"got {every}")
    if args.resume:
        folder = Path(args.output)
        if not (folder / "checkpoint.lsd").is_file():
            raise UsageError(f"--resume: no checkpoint in {folder} (expected {folder / 'checkpoint.lsd'})")
        if (folder / "summary.json").exists():
            raise UsageError(f"--resume: the run in {folder} is already complete (summary.json exists)")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"output folder {folder} is not writable")
    else:
        folder = prepareOutput(args.output, RUN_FILES, args.overwrite)
    example = buildSystem(args)
    velocities = _initialVelocities(example, args)
    sim = makeSimulation(args, example)
    # Rank 0 only from here on.
    sim.context.setPositions(example.positions)
    sim.context.setVelocities(velocities)
    elapsedBefore = 0.0
    if args.resume:
        from .checkpoint import CheckpointError

        try:
            extra = sim.loadCheckpoint(str(folder / "checkpoint.lsd"))
        except CheckpointError as exc:
            raise UsageError(str(exc)) from None
        if not extra or "sizes" not in extra:
            raise UsageError(f"{folder / 'checkpoint.lsd'} was not written by openmm-lsd run")
        _rewind(folder, extra)
        elapsedBefore = extra.get("wallSeconds", 0.0)
    else:
        for name in RUN_FILES:
            if (folder / name).exists():
                (folder / name).unlink()  # --overwrite: nothing of the old run may look like part of this one
        with open(folder / "topology.pdb", "w") as f:
            app.PDBFile.writeFile(example.topology, example.positions * unit.nanometer, f)
    first = sim.currentStep
    if first > args.steps:
        raise UsageError(f"the checkpoint is at step {first}, past --steps {args.steps}")
    append = bool(args.resume) and first > 0
    sim.reporters.append(app.DCDReporter(str(folder / "trajectory.dcd"), interval,
                                         append=append and (folder / "trajectory.dcd").exists()))
    npt = _barostat(example) is not None
    sim.reporters.append(app.StateDataReporter(str(folder / "log.csv"), interval, step=True, time=True,
                                               potentialEnergy=True, kineticEnergy=True, totalEnergy=True,
                                               temperature=True, volume=npt, density=npt, speed=True,
                                               append=append and (folder / "log.csv").exists()))
    from .reporters import StatisticsReporter

    sim.reporters.append(StatisticsReporter(str(folder / "statistics.csv"), interval,
                                            append=append and (folder / "statistics.csv").exists()))
    K = getattr(sim.verifier, "numVerifiers", 0)
    print(f"openmm-lsd run: {example.description}; {args.steps} steps of {args.timestep} fs, window {args.window}, "
          f"{'in-process verification' if not K else f'{K} verifier ranks'}; output in {folder}"
          + (f"; resuming at step {first}" if args.resume else ""), file=sys.stderr)
    bar = _progress(args.steps, args.no_progress)
    if bar is not None and first:
        bar.update(first)
    start = time.perf_counter()
    done = first
    while done < args.steps:
        chunk = min(interval, args.steps - done)
        try:
            sim.step(chunk)
        except RuntimeError as exc:
            # A target force that is not finite, a failed target step, a verifier rank that failed or
            # hangs: the Context holds the last accepted step; keep it and say how to go on.
            if bar is not None:
                bar.close()
            kept = ""
            if every:
                _saveRunCheckpoint(sim, folder, elapsedBefore + time.perf_counter() - start)
                kept = f"; checkpoint at step {sim.currentStep} in {folder / 'checkpoint.lsd'} (--resume continues)"
            raise RunFailed(f"stopped at step {sim.currentStep}: {exc}{kept}") from None
        done += chunk
        if every and done % every == 0 and done < args.steps:
            _saveRunCheckpoint(sim, folder, elapsedBefore + time.perf_counter() - start)
        if bar is not None:
            s = sim.statistics
            elapsed = time.perf_counter() - start
            bar.set_postfix(acceptance=f"{s.acceptanceRate:.2f}", steps_per_round=f"{s.stepsPerRound:.2f}",
                            ns_per_day=f"{(done - first) * args.timestep * 1e-6 / elapsed * 86400:.2f}", refresh=False)
            bar.update(chunk)
    wall = elapsedBefore + time.perf_counter() - start
    if bar is not None:
        bar.close()
    if every:
        _saveRunCheckpoint(sim, folder, wall)
    _flush(sim.reporters)
    sim.close()
    s = sim.statistics
    summary = {"acceptance_rate": s.acceptanceRate, "steps_per_round": s.stepsPerRound, "steps": s.steps,
               "seed": args.seed, "wall_seconds": wall, "ns_per_day": args.steps * args.timestep * 1e-6 / wall * 86400,
               "verifiers": K, "resumed": bool(args.resume), "settings": settings(args, example),
               "statistics": s.asDict(), "files": [n for n in RUN_FILES if n != "summary.json"]}
    plotAcceptance(folder / "acceptance.png", s.acceptanceByPosition, s.expectedAcceptanceByPosition,
                   f"{example.name}: acceptance {s.acceptanceRate:.2f}, {s.stepsPerRound:.2f} steps per round")
    writeJSON(folder / "summary.json", summary)
    moves = f", {s.volumeMovesAccepted} of {s.volumeMoves} volume moves accepted" if npt else ""
    print(f"acceptance {s.acceptanceRate:.3f}, {s.stepsPerRound:.2f} steps per round{moves}, "
          f"{summary['ns_per_day']:.2f} ns/day; wrote {folder}/summary.json", file=sys.stderr)
    return summary


def plotAcceptance(path, measured, predicted, title):
    """Bar plot of acceptance by window position (measured) with the mean 2 Phi(-|m|/2) (predicted)."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    positions = np.arange(len(measured))
    ax.bar(positions, measured, color="tab:blue", alpha=0.7, label="accepted fraction")
    if predicted is not None:
        ax.plot(positions, predicted, "o-", color="tab:red", label="mean 2Φ(-|m|/2)")
    ax.set_xlabel("window position")
    ax.set_ylabel("acceptance")
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---- estimate ------------------------------------------------------------------------------------

def estimate(args):
    checkNumbers(args)
    from .analysis import estimate as predict

    example = buildSystem(args)
    velocities = _initialVelocities(example, args)
    result = predict(lambda: makeSimulation(args, example, verifier="inprocess"),
                     example.positions, velocities, steps=args.steps)
    result["settings"] = settings(args, example)
    alpha = result["predicted_acceptance_by_position"]
    print(f"openmm-lsd estimate: {example.description}; {result['sampled_steps']} sampled steps")
    print("  predicted acceptance by window position: " + " ".join(f"{a:.2f}" for a in alpha))
    print(f"  predicted steps per round {result['predicted_steps_per_round']:.2f}; T_t {result['target_seconds'] * 1e3:.2f}"
          f" ms, T_d {result['draft_seconds'] * 1e3:.3f} ms")
    print("  predicted speedup bound: " + ", ".join(f"K={K}: {v:.2f}x" for K, v in result["predicted_speedup"].items()))
    if args.compare:
        try:
            measured = json.loads(Path(args.compare).read_text())
            steps = measured["steps_per_round"]
            byPosition = measured["statistics"]["acceptanceByPosition"]
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"--compare needs the summary.json of an openmm-lsd run: {exc}") from None
        error = result["predicted_steps_per_round"] / steps - 1
        result["measured_steps_per_round"] = steps
        result["measured_acceptance_by_position"] = byPosition
        result["relative_error_steps_per_round"] = error
        print(f"  measured ({args.compare}): {steps:.2f} steps per round; prediction off by {100 * error:+.1f}%")
        print("  measured acceptance by window position:  " + " ".join(f"{a:.2f}" for a in byPosition))
    if args.json:
        writeJSON(args.json, result)
    return result


# ---- validate ------------------------------------------------------------------------------------

VALIDATE_FILES = ("validation.json", "energy.png", "observables.png", "rdf.png")
MIN_REPLICAS = 10


#: g/mL per Da/nm^3
DENSITY_UNIT = 1.66053906660e-3
#: O-O distance (nm) within which a water's neighbours count (the first minimum of water's O-O RDF)
FIRST_SHELL = 0.335


def _observables(example, frames, boxes=None):
    """Scalar series for the statistical test (name -> array) and curves to plot, from positions (F, N, 3).

    ``boxes`` (F, 3, 3) nm: each frame's box (constant pressure); by default the topology's.
    """
    import mdtraj

    top = mdtraj.Topology.from_openmm(example.topology)
    box = example.topology.getPeriodicBoxVectors()
    traj = mdtraj.Trajectory(np.asarray(frames), top)
    if boxes is not None:
        traj.unitcell_vectors = np.asarray(boxes)
    elif box is not None:
        vectors = np.array([[v.x, v.y, v.z] for v in box.value_in_unit(unit.nanometer)])
        traj.unitcell_vectors = np.repeat(vectors[None], traj.n_frames, axis=0)
    out, curves = {}, {}
    if boxes is not None:
        mass = sum(example.target.getParticleMass(i).value_in_unit(unit.dalton)
                   for i in range(example.target.getNumParticles()))
        volumes = np.asarray(boxes)[:, 0, 0] * np.asarray(boxes)[:, 1, 1] * np.asarray(boxes)[:, 2, 2]
        out["density (g/mL)"] = mass / volumes * DENSITY_UNIT
    water = top.select("water and element O")
    solute = top.select("not water")
    if len(water) >= 2:
        pairs = top.select_pairs(water, water)
        periodic = box is not None
        d = mdtraj.compute_distances(traj, pairs, periodic=periodic)
        out["mean O-O distance (nm)"] = d.mean(axis=1)
        if periodic:
            # The RDF's integral over the first shell: neighbours per water within FIRST_SHELL.
            out[f"O-O coordination (r < {FIRST_SHELL} nm)"] = 2 * (d < FIRST_SHELL).sum(axis=1) / len(water)
        if periodic:
            curves["O-O radial distribution function"] = mdtraj.compute_rdf(traj, pairs, r_range=(0.2, 0.8),
                                                                            bin_width=0.01)
        else:  # a cluster has no volume to normalise an RDF by: the pair-distance density instead
            density, edges = np.histogram(d.ravel(), bins=60, range=(0.2, 1.2), density=True)
            curves["O-O pair distance density"] = (0.5 * (edges[1:] + edges[:-1]), density)
    if len(solute) and len(mdtraj.compute_phi(traj)[0]):
        phi = mdtraj.compute_phi(traj)[1][:, 0]
        psi = mdtraj.compute_psi(traj)[1][:, 0]
        out["phi (rad)"] = phi
        # psi wrapped where alanine dipeptide has little density, so that the KS test sees one interval.
        out["psi (rad)"] = np.mod(psi + 2.0, 2 * np.pi) - 2.0
    return out, curves


def validate(args):
    """Serial OpenMM and LSD as independent replicas from one equilibrated state, compared per replica.

    Each replica runs ``--replica-steps`` steps from the same state with fresh noise
    (OpenMM's generator simply continues; LSD's noise is keyed by step index, so each
    LSD replica starts at its own step offset). Per replica, each observable is
    averaged over the replica's frames: R independent, identically distributed
    numbers per method whatever the autocorrelation or drift (an evaporating water
    cluster is fine: both laws start from the same state). Two-sample KS and Welch
    tests on those, Bonferroni over observables and tests at family-wise ``--alpha``.
    """
    args.steps = args.replicas * args.replica_steps
    checkNumbers(args)
    interval = args.report_interval
    if interval < 1 or args.replica_steps < interval:
        raise UsageError("--replica-steps must be at least --report-interval")
    if args.replicas < MIN_REPLICAS:
        raise UsageError(f"--replicas must be at least {MIN_REPLICAS} for a test")
    folder = prepareOutput(args.output, VALIDATE_FILES, args.overwrite)
    example = buildSystem(args)
    barostat = _barostat(example)
    if barostat is not None and (args.replica_steps % barostat.getFrequency() or
                                 args.equilibrate % barostat.getFrequency()):
        raise UsageError(f"with a barostat, --replica-steps and --equilibrate must be multiples of its frequency "
                         f"({barostat.getFrequency()}), so that serial and LSD replicas attempt volume moves at the "
                         f"same steps")
    velocities = _initialVelocities(example, args)
    sim = makeSimulation(args, example, _control=getattr(args, "control", None))
    from .validation import compareSamples
    from .integrators import Coefficients, canonical_scheme, serialIntegrator

    # Serial reference: OpenMM's own integrator (LangevinMiddle) or the package's leapfrog, on the target.
    coeffs = Coefficients(canonical_scheme(args.scheme), args.temperature, args.friction, args.timestep * 1e-3)
    integrator = serialIntegrator(coeffs)
    integrator.setRandomNumberSeed(args.seed + 1)
    if barostat is not None:
        # OpenMM's barostat draws its seed from the OS when it is 0: fixed here, and new for each replica (LSD's
        # moves are keyed by its own seed and never read this one).
        barostat.setRandomNumberSeed(args.seed + 1)
    platform = openmm.Platform.getPlatformByName(args.platform) if args.platform else None
    serial = app.Simulation(example.topology, example.target, integrator, platform) if platform else \
        app.Simulation(example.topology, example.target, integrator)
    if example.topology.getPeriodicBoxVectors() is not None:
        serial.context.setPeriodicBoxVectors(*example.topology.getPeriodicBoxVectors())
    serial.context.setPositions(example.positions)
    serial.context.setVelocities(velocities)
    R, n = args.replicas, args.replica_steps
    print(f"openmm-lsd validate: {example.description}; {args.equilibrate} equilibration steps, then {R} replicas "
          f"of {n} steps each for serial OpenMM and for LSD, a frame every {interval}", file=sys.stderr)
    serial.step(args.equilibrate)
    start = serial.context.getState(getPositions=True, getVelocities=True)
    x0, v0 = start.getPositions(asNumpy=True), start.getVelocities(asNumpy=True)
    box0 = start.getPeriodicBoxVectors()

    def freshSerial(r):
        # A new Context state for the barostat, as at the start of a run: its move schedule and its
        # adaptive volume step restart (LSD's likewise), with the integrator's noise seeded anew.
        integrator.setRandomNumberSeed(args.seed + 2 + r)
        barostat.setRandomNumberSeed(args.seed + 1000 + r)
        serial.context.reinitialize()

    def freshLSD(r):
        sim.resetBarostat()

    def replicas(simulation, offset, fresh):
        energies, frames, boxes, seconds = [], [], [], 0.0
        for r in range(R):
            if barostat is not None:
                fresh(r)
                simulation.context.setPeriodicBoxVectors(*box0)
            simulation.context.setPositions(x0)
            simulation.context.setVelocities(v0)
            simulation.context.setStepCount(offset(r))
            t0 = time.perf_counter()
            e, f, b = [], [], []
            for _ in range(n // interval):
                simulation.step(interval)
                state = simulation.context.getState(getPositions=True, getEnergy=True)
                e.append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
                f.append(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
                b.append(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer))
            seconds += time.perf_counter() - t0
            energies.append(e)
            frames.append(f)
            boxes.append(b)
        return np.array(energies), np.array(frames), seconds, np.array(boxes)

    records = {"serial": replicas(serial, lambda r: 0, freshSerial),
               "lsd": replicas(sim, lambda r: (r + 1) * 10 * (n + args.equilibrate), freshLSD)}
    sim.close()
    perFrame = {"potential energy (kJ/mol)": (records["lsd"][0], records["serial"][0])}
    framesL = records["lsd"][1].reshape((-1,) + records["lsd"][1].shape[2:])
    framesS = records["serial"][1].reshape((-1,) + records["serial"][1].shape[2:])
    boxesL = records["lsd"][3].reshape(-1, 3, 3) if barostat is not None else None
    boxesS = records["serial"][3].reshape(-1, 3, 3) if barostat is not None else None
    obsL, curvesL = _observables(example, framesL, boxesL)
    obsS, curvesS = _observables(example, framesS, boxesS)
    for name in obsL:
        perFrame[name] = (obsL[name].reshape(R, -1), obsS[name].reshape(R, -1))
    series = {name: (a.mean(axis=1), b.mean(axis=1)) for name, (a, b) in perFrame.items()}
    threshold = args.alpha / len(series)
    tests = {name: compareSamples(a, b, independent=True) for name, (a, b) in series.items()}
    agree = all(t["p"] > threshold for t in tests.values())
    verdict = "AGREE" if agree else "DISAGREE"
    s = sim.statistics
    result = {"verdict": verdict, "agree": agree, "replicas": R, "replica_steps": n, "threshold": threshold,
              "family_alpha": args.alpha, "tests": tests, "acceptance_rate": s.acceptanceRate,
              "steps_per_round": s.stepsPerRound, "volume_moves": s.volumeMoves,
              "volume_moves_accepted": s.volumeMovesAccepted, "serial_seconds": records["serial"][2],
              "lsd_seconds": records["lsd"][2], "settings": settings(args, example)}
    _plotValidation(folder, {k: (a.ravel(), b.ravel()) for k, (a, b) in perFrame.items()}, curvesL, curvesS, tests)
    writeJSON(folder / "validation.json", result)
    print(f"{'observable (replica mean)':32s} {'LSD':>12s} {'serial':>12s} {'+-':>8s} {'p':>8s}")
    for name, t in tests.items():
        print(f"{name:32s} {t['lsd']['mean']:12.4f} {t['serial']['mean']:12.4f} "
              f"{math.hypot(t['lsd']['stderr'], t['serial']['stderr']):8.4f} {t['p']:8.3g}")
    print(f"{verdict}: {'every' if agree else 'not every'} p above {threshold:.3g} (family-wise {args.alpha} over "
          f"{len(series)} observables; KS and Welch tests on {R} independent replica means per method); LSD "
          f"acceptance {s.acceptanceRate:.3f}; plots and validation.json in {folder}")
    return result


def _pyplot():
    """matplotlib's pyplot on the Agg backend, or None where matplotlib is missing (plots are then skipped)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _histogramPair(ax, name, lsd, serial, p):
    bins = np.histogram_bin_edges(np.concatenate([lsd, serial]), bins=30)
    ax.hist(serial, bins=bins, density=True, alpha=0.5, label="serial OpenMM")
    ax.hist(lsd, bins=bins, density=True, histtype="step", lw=2, label="LSD")
    ax.set_xlabel(name)
    ax.set_title(f"p = {p:.3g}", fontsize=9)
    ax.legend(fontsize=7)


def _plotValidation(folder, series, curvesL, curvesS, tests):
    plt = _pyplot()
    if plt is None:
        return
    names = list(series)
    # energy.png: the potential energy alone; observables.png: every observable side by side.
    for path, shown in ((folder / "energy.png", names[:1]), (folder / "observables.png", names)):
        fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.2), squeeze=False)
        for ax, name in zip(axes[0], shown):
            _histogramPair(ax, name, *series[name], tests[name]["p"])
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
    for name in curvesL:
        fig, ax = plt.subplots(figsize=(4, 3.2))
        ax.plot(*curvesS[name], label="serial OpenMM")
        ax.plot(*curvesL[name], label="LSD")
        ax.set_xlabel("r (nm)")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "rdf.png", dpi=100)
        plt.close(fig)
