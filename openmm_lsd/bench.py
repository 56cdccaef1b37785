"""Side-by-side benchmark: the serial target run and LSD, in one process tree.

Run by ``openmm-lsd bench`` (which launches ``mpiexec`` itself); under
``mpiexec -n K+1 python -m openmm_lsd.bench ...`` rank 0 first times the serial
run (OpenMM's ``LangevinMiddleIntegrator`` on the target System) while the
verifier ranks wait idle, then times LSD with K verifier ranks, and writes JSON.

Figures (DESIGN.md section 7): alpha is the measured acceptance, k the
effective window min(window, lag), K the verifier count,
E = (1 - alpha^k)/(1 - alpha), and

    bound      = E * T_t / (T_t * ceil(k/K) + k * T_d)
    efficiency = speedup / bound

with T_t the mean wall time of one target call (measured on the verifier
ranks), T_d the mean draft step (measured on rank 0, including reading it back)
and controller overhead left out of the bound, so that it shows in the efficiency.
"""

import argparse
import json
import os
import sys
import time
from importlib import resources

import numpy as np
import openmm
from openmm import app, unit

from .corrections import CORRECTIONS
from .emulation import latencySystem
from .simulation import SpeculativeSimulation
from .statistics import speedupBound
from .verifiers.mpi import launchRank

CASES = ("emulated", "xtb-water", "batched", "overhead", "copper", "barostat")


def alanineDipeptideCase(latency):
    """Alanine dipeptide in vacuum: Amber14 target (held ``latency`` s per call), Amber03 draft.

    Both with HBonds constraints and OpenMM's default CMMotionRemover; the draft
    takes the target's masses (the force fields' hydrogen masses differ in the
    last digits).  The real force costs ~0.015 ms on the Reference platform, so
    nearly all of a target call is the emulated latency.  Positions are minimized
    with the draft (no target calls).
    """
    pdb = app.PDBFile(str(resources.files("openmm_lsd") / "data" / "alanine-dipeptide.pdb"))
    settings = dict(nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
    real = app.ForceField("amber14-all.xml").createSystem(pdb.topology, **settings)
    draft = app.ForceField("amber03.xml").createSystem(pdb.topology, **settings)
    for i in range(real.getNumParticles()):
        draft.setParticleMass(i, real.getParticleMass(i))
    target = latencySystem(real, latency)
    context = openmm.Context(draft, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(pdb.positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 200)
    positions = context.getState(getPositions=True).getPositions(asNumpy=True)
    return pdb.topology, positions, target, draft


def waterBoxCase(latency, frequency, edge=1.2, pressure=1.0, temperature=300.0):
    """A periodic TIP3P box at constant pressure: TIP3P target held ``latency`` s per call, with a
    ``MonteCarloBarostat`` every ``frequency`` steps (0: none, the NVT comparison); the draft is TIP3P with
    charges scaled by 0.97 (PME, rigid water, cutoff 0.55 nm).  1.2 nm: 50 waters; the real force costs
    ~1.3 ms on the Reference platform, so the emulated latency dominates a target call."""
    from .testsystems import minimizeWith, tip3p, waterBoxTopology

    topology, positions = waterBoxTopology(edge)
    real, draft = tip3p(topology, 0.55), tip3p(topology, 0.55, chargeScale=0.97)
    target = latencySystem(real, latency)
    if frequency:
        target.addForce(openmm.MonteCarloBarostat(pressure, temperature, frequency))
    return topology, minimizeWith(draft, topology, positions, iterations=200), target, draft


def xtbWaterCase(numWaters=8):
    """Rigid waters in vacuum: GFN2-xTB target, TIP3P draft (:func:`openmm_lsd.systems.water`)."""
    from .testsystems import water

    example = water(numWaters)
    return example.topology, example.positions, example.target, example.draft


def batchedThroughput(batch=8, repeats=30, hidden=16, numParticles=22):
    """Median seconds for one call on ``batch`` configurations and for ``batch`` single calls, side by side."""
    from .models import TorchPairPotential

    model = TorchPairPotential(numParticles, hidden=hidden)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, numParticles, 3)) * 0.3
    model.batchForces(x)
    together, separate = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        model.batchForces(x)
        together.append(time.perf_counter() - start)
        start = time.perf_counter()
        for b in range(batch):
            model.batchForces(x[b:b + 1])
        separate.append(time.perf_counter() - start)
    import torch

    return {"case": "batched", "batch": batch, "hidden": hidden, "particles": numParticles,
            "torch_threads": torch.get_num_threads(), "repeats": repeats,
            "batch_seconds": float(np.median(together)), "separate_seconds": float(np.median(separate)),
            "throughput_ratio": float(np.median(separate) / np.median(together))}


def controllerOverhead(steps=200, seed=1, referenceTargetSeconds=0.020):
    """Per drafted step, the engine's own work around the draft integrator, for ~1,000 atoms.

    A 2.16 nm box of rigid TIP3P water (972 atoms, PME, CPU platform with 1
    thread) as both target and draft; in-process, or under ``mpiexec`` with
    verifier ranks (which also return the draft forces the offset needs, so
    rank 0 does not read them back).  Reported per drafted step:
    the draft integrator's step alone, everything else the draft phase does
    (noise, correction, reading x_j and x_pre back), and the controller's
    verification work per verified step (replay Context, coupling), against a
    20 ms target call.
    """
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(forcefield, boxSize=openmm.Vec3(2.16, 2.16, 2.16) * unit.nanometer, model="tip3p")
    settings = dict(nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer, constraints=app.HBonds)
    target = forcefield.createSystem(modeller.topology, **settings)
    draft = forcefield.createSystem(modeller.topology, **settings)
    sim = SpeculativeSimulation(modeller.topology, target, draft, 300, 1.0, 0.002, window=8, platform="CPU",
                                platformProperties={"Threads": "1"}, seed=seed, draftCorrection="offset")
    sim.context.setPositions(modeller.positions)
    sim.minimizeEnergy(maxIterations=100)
    sim.context.setVelocitiesToTemperature(300, seed)
    sim.step(5)
    s = sim.statistics
    before = (s.draftSeconds, s.draftIntegratorSeconds, s.verifySeconds, s.draftSteps, s.steps)
    sim.step(steps)
    draftSeconds = s.draftSeconds - before[0]
    integratorSeconds = s.draftIntegratorSeconds - before[1]
    verifySeconds = s.verifySeconds - before[2]
    drafted = s.draftSteps - before[3]
    verified = s.steps - before[4]
    aroundDraft = (draftSeconds - integratorSeconds) / drafted
    controller = verifySeconds / verified
    overhead = aroundDraft + controller * verified / drafted
    return {"case": "overhead", "atoms": modeller.topology.getNumAtoms(), "steps": verified, "draft_steps": drafted,
            "verifiers": getattr(sim.verifier, "numVerifiers", 0),
            "draft_integrator_seconds": integratorSeconds / drafted, "around_draft_seconds": aroundDraft,
            "controller_seconds_per_verified_step": controller, "overhead_seconds_per_drafted_step": overhead,
            "overhead_fraction_of_20ms_target": overhead / referenceTargetSeconds,
            "draftCorrection": sim.correction.name, "lag": sim.correction.lag}


def _velocities(system, positions, temperature, seed):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    context.setVelocitiesToTemperature(temperature, seed)
    return context.getState(getVelocities=True).getVelocities(asNumpy=True)


def bound(alpha, k, verifiers, targetSeconds, draftSeconds):
    """The speedup bound of DESIGN.md section 7 with zero controller overhead, for a constant acceptance alpha."""
    E = k if alpha >= 1 else (1 - alpha**k) / (1 - alpha)
    return speedupBound(E, k, max(verifiers, 1), targetSeconds, draftSeconds)


def addOptions(parser):
    """The options of ``openmm-lsd bench``, one list for the command line and the benchmark process it starts."""
    parser.add_argument("--case", choices=CASES, default="emulated",
                        help="emulated: alanine dipeptide with a latency-emulating target; xtb-water: GFN2-xTB water; "
                             "copper: GFN1-xTB Cu cluster (+ --latency-ms); barostat: 50-water box at constant "
                             "pressure; batched: a torch model on a batch; overhead: the engine's own cost per step")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added target latency (default 20 ms)")
    parser.add_argument("--verifiers", type=int, default=0, help="verifier ranks K (0: in-process)")
    parser.add_argument("--window", type=int, default=8, help="window (default 8)")
    parser.add_argument("--lag", type=int, default=None, help="correction lag (default 8)")
    parser.add_argument("--steps", type=int, default=400, help="LSD steps timed (default 400)")
    parser.add_argument("--serial-steps", type=int, default=None, help="serial steps timed (default min(steps, 200))")
    parser.add_argument("--friction", type=float, default=1.0, help="1/ps (default 1)")
    parser.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    parser.add_argument("--step-size-fs", type=float, default=2.0, help="fs (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--platform", default="Reference", help="OpenMM platform (default Reference)")
    parser.add_argument("--hidden", type=int, default=16, help="batched case: width of the torch model")
    parser.add_argument("--size", type=int, default=13, help="copper case: cluster size (13, 55, 147)")
    parser.add_argument("--correction", choices=CORRECTIONS, default="offset", help="draft correction (default offset)")
    parser.add_argument("--barostat-frequency", type=int, default=25,
                        help="barostat case: steps between volume moves (default 25; 0: no barostat)")
    parser.add_argument("--target", default=None,
                        help="copper case: the target model (default gfn1-xtb; sevennet-0, sevennet-l3i5, ...)")
    parser.add_argument("--batched", action="store_true",
                        help="copper case, in-process: a SevenNet target's window evaluated in one model call")
    parser.add_argument("--report-interval", type=int, default=0,
                        help="also time LSD with OpenMM's StateDataReporter(potentialEnergy=True) every N steps, in "
                             "blocks alternating with none (0: off)")
    parser.add_argument("--json", default=None, help="write the figures to this file")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m openmm_lsd.bench")
    addOptions(parser)
    parser.add_argument("--serial-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serial-seconds", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--command", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.case == "overhead":
        result = controllerOverhead(args.steps, args.seed)
        result["command"] = args.command
        return _write(result, args.json)
    if args.case == "batched":
        result = batchedThroughput(hidden=args.hidden)
        result["command"] = args.command
        return _write(result, args.json)
    rank = launchRank()
    if args.case == "xtb-water":
        topology, positions, target, draft = xtbWaterCase()
    elif args.case == "copper":
        from .emulation import addLatency
        from .testsystems import copper

        model = args.target or "gfn1-xtb"
        if args.batched:
            from .models import SevenNetPotential

            model = SevenNetPotential(model)
        example = copper("cluster", args.size, model=model)
        topology, positions, draft = example.topology, example.positions, example.draft
        # The added latency is part of the target System: the serial baseline and every rank pay it.
        target = addLatency(example.target, args.latency_ms / 1000)
    elif args.case == "barostat":
        topology, positions, target, draft = waterBoxCase(args.latency_ms / 1000, args.barostat_frequency)
    else:
        topology, positions, target, draft = alanineDipeptideCase(args.latency_ms / 1000)
    dt = args.step_size_fs / 1000
    properties = {"Threads": "1"} if args.platform == "CPU" else None
    platform = openmm.Platform.getPlatformByName(args.platform)
    velocities = _velocities(target, positions, args.temperature, args.seed) if rank == 0 else None

    serial = args.serial_seconds
    serialSteps = args.serial_steps or max(20, min(args.steps, 200))
    if rank == 0 and serial is None:
        # The serial baseline first: verifier ranks are already waiting (idle, not spinning) in the constructor.
        integrator = openmm.LangevinMiddleIntegrator(args.temperature, args.friction, dt)
        integrator.setRandomNumberSeed(args.seed)
        context = openmm.Context(target, integrator, platform, properties or {})
        if topology.getPeriodicBoxVectors() is not None:
            context.setPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
        context.setPositions(positions)
        context.setVelocities(velocities)
        integrator.step(2)
        start = time.perf_counter()
        integrator.step(serialSteps)
        serial = (time.perf_counter() - start) / serialSteps
        del context
    if args.serial_only:
        return _write({"case": args.case, "serial_seconds_per_step": serial, "serial_steps": serialSteps,
                       "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}, None)

    verifier = None
    if args.batched:
        from .verifiers import BatchedVerifier

        if args.case != "copper" or args.latency_ms:
            raise SystemExit("--batched: the copper case with a SevenNet --target and --latency-ms 0")
        verifier = BatchedVerifier(model)
    sim = SpeculativeSimulation(topology, target, draft, args.temperature, args.friction, dt, window=args.window,
                                draftCorrection=args.correction, correctionLag=args.lag, platform=platform,
                                platformProperties=properties, seed=args.seed, verifier=verifier)
    # Only rank 0 gets here: verifier ranks served inside the constructor and ended.
    if topology.getPeriodicBoxVectors() is not None:
        sim.context.setPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
    sim.context.setPositions(positions)
    sim.context.setVelocities(velocities)
    sim.step(2)
    start = time.perf_counter()
    sim.step(args.steps)
    lsd = (time.perf_counter() - start) / args.steps
    reporting = _timeReporting(sim, args.steps, args.report_interval) if args.report_interval else {}
    s = sim.statistics
    verifier = sim.verifier
    K = getattr(verifier, "numVerifiers", 1)
    targetSeconds = verifier.targetSeconds / max(verifier.numEvaluations, 1)
    draftSeconds = s.draftSeconds / max(s.draftSteps, 1)
    lag = sim.correction.lag
    k = min(args.window, lag) if lag else args.window
    b = bound(s.acceptanceRate, k, K, targetSeconds, draftSeconds)
    speedup = serial / lsd
    result = {
        "case": args.case,
        "command": args.command,
        "verifiers": K,
        "window": args.window,
        "lag": lag,
        "effective_window": k,
        "latency_ms": args.latency_ms if args.case in ("emulated", "copper", "barostat") else None,
        "barostat_frequency": args.barostat_frequency if args.case == "barostat" else None,
        "volume_moves": s.volumeMoves,
        "volume_moves_accepted": s.volumeMovesAccepted,
        # Wall time on rank 0 waiting for the trial energies of volume moves, per LSD wall time.
        "barostat_fraction": s.barostatSeconds / (lsd * args.steps),
        "draftCorrection": sim.correction.name,
        "size": args.size if args.case == "copper" else None,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        # The serial baseline ran in its own process, with the faster of 1 thread and all cores.
        "serial_omp_num_threads": os.environ.get("OPENMM_LSD_SERIAL_THREADS"),
        "serial_seconds_by_threads": json.loads(os.environ.get("OPENMM_LSD_SERIAL_TIMINGS", "null")),
        "friction": args.friction,
        "steps": s.steps,
        "serial_steps": serialSteps,
        "serial_seconds_per_step": serial,
        "lsd_seconds_per_step": lsd,
        "speedup": speedup,
        "bound": b,
        "efficiency": speedup / b,
        "acceptance": s.acceptanceRate,
        "acceptance_by_position": s.acceptanceByPosition,
        "steps_per_round": s.stepsPerRound,
        # DESIGN.md section 7's throughput cap (1 - alpha^L)/(1 - alpha) and what was reached: steps per T_t.
        "throughput_cap": ((1 - s.acceptanceRate ** lag) / (1 - s.acceptanceRate)
                           if lag and s.acceptanceRate < 1 else (lag or float("nan"))),
        "steps_per_target_latency": targetSeconds / lsd,
        "target_seconds": targetSeconds,
        "draft_seconds": draftSeconds,
        "overhead_seconds": s.verifySeconds / max(s.steps, 1),
        "target_evaluations": s.targetEvaluations,
        "queue_wait_seconds_mean": float(np.mean(verifier.queueWaits)) if getattr(verifier, "queueWaits", None) else 0.0,
        "queue_wait_seconds_median": float(np.median(verifier.queueWaits)) if getattr(verifier, "queueWaits", None) else 0.0,
        "draft_steps": s.draftSteps,
        "platform": args.platform,
        "target": args.target if args.case == "copper" else None,
        "batched": bool(args.batched),
        **reporting,
    }
    if hasattr(sim.correction, "fitReport"):  # the learned correction: its fits, their cost and what they leave
        report = sim.correction.fitReport(sim.coefficients)
        report["fit_seconds_per_refit"] = report["fit_seconds"] / max(report["refits"], 1)
        result["learned"] = report
    sim.close()
    return _write(result, args.json)


def _timeReporting(sim, steps, interval, blocks=10):
    """Seconds per step of the same run in blocks alternating without and with a StateDataReporter that asks
    for the potential energy every ``interval`` steps (as a user's log does); medians over the blocks."""
    import io

    reporter = app.StateDataReporter(io.StringIO(), interval, step=True, potentialEnergy=True, temperature=True)
    per = max(interval, (steps // blocks) // interval * interval)
    timings = {False: [], True: []}
    for block in range(blocks):
        withReporter = block % 2 == 1
        sim.reporters[:] = [reporter] if withReporter else []
        start = time.perf_counter()
        sim.step(per)
        timings[withReporter].append((time.perf_counter() - start) / per)
    sim.reporters[:] = []
    quiet, logged = float(np.median(timings[False])), float(np.median(timings[True]))
    return {"report_interval": interval, "report_block_steps": per, "lsd_seconds_per_step_quiet": quiet,
            "lsd_seconds_per_step_reporting": logged, "reporting_slowdown": logged / quiet - 1}


def _write(result, path):
    text = json.dumps(result, indent=2)
    if path:
        with open(path, "w") as handle:
            handle.write(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
