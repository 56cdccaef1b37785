"""``openmm-lsd validate``: LSD and the serial target run side by side, compared statistically."""

import math
import sys
import time

import numpy as np
import openmm
from openmm import app, unit

from .common import (UsageError, barostatOf, buildSystem, checkNumbers, initialVelocities, makeSimulation,
                     prepareOutput, pyplot, settings, writeJSON)


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
    barostat = barostatOf(example)
    if barostat is not None and (args.replica_steps % barostat.getFrequency() or
                                 args.equilibrate % barostat.getFrequency()):
        raise UsageError(f"with a barostat, --replica-steps and --equilibrate must be multiples of its frequency "
                         f"({barostat.getFrequency()}), so that serial and LSD replicas attempt volume moves at the "
                         f"same steps")
    velocities = initialVelocities(example, args)
    sim = makeSimulation(args, example, _control=getattr(args, "control", None))
    from .. import validation
    from ..validation import compareSamples
    from ..integrators import Coefficients, canonical_scheme, serialIntegrator

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

    def serialContext(r):
        # With a barostat, a new Context state, as at the start of a run: its move schedule and its
        # adaptive volume step restart (LSD's likewise), with the integrator's noise seeded anew.
        if barostat is not None:
            integrator.setRandomNumberSeed(args.seed + 2 + r)
            barostat.setRandomNumberSeed(args.seed + 1000 + r)
            serial.context.reinitialize()
        return serial.context

    def frame(context, chunk):
        state = context.getState(getPositions=True, getEnergy=True)
        return np.concatenate([[state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)],
                               state.getPositions(asNumpy=True).value_in_unit(unit.nanometer).ravel(),
                               state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer).ravel()])

    def replicas(sample, **options):
        # Per replica, a frame every `interval` steps: energy, positions, box (validation's samplers).
        t0 = time.perf_counter()
        data = sample(x0, v0, [interval] * (n // interval), R, box=box0 if barostat is not None else None,
                      observe=frame, **options)
        seconds = time.perf_counter() - t0
        data = data.reshape(R, n // interval, -1)
        return data[:, :, 0], data[:, :, 1:-9].reshape(R, n // interval, -1, 3), seconds, \
            data[:, :, -9:].reshape(R, n // interval, 3, 3)

    # LSD's noise is keyed by (seed, step): each replica starts at a step offset of its own.
    records = {"serial": replicas(lambda *a, **o: validation.serialRepetitions(serialContext, *a, **o)),
               "lsd": replicas(lambda *a, **o: validation.lsdRepetitions(sim, *a, **o),
                               startStep=lambda r: (r + 1) * 10 * (n + args.equilibrate),
                               freshBarostat=barostat is not None)}
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


def _histogramPair(ax, name, lsd, serial, p):
    bins = np.histogram_bin_edges(np.concatenate([lsd, serial]), bins=30)
    ax.hist(serial, bins=bins, density=True, alpha=0.5, label="serial OpenMM")
    ax.hist(lsd, bins=bins, density=True, histtype="step", lw=2, label="LSD")
    ax.set_xlabel(name)
    ax.set_title(f"p = {p:.3g}", fontsize=9)
    ax.legend(fontsize=7)


def _plotValidation(folder, series, curvesL, curvesS, tests):
    plt = pyplot()
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
