"""``openmm-lsd run``: LSD on a system, with a trajectory, logs, checkpoints and a summary.

Every rank of an MPI launch runs this function; ranks > 0 build the same Systems, then serve
target evaluations inside the ``SpeculativeSimulation`` constructor and end there, so everything
after it runs on rank 0 only.
"""

import os
import sys
import time
from pathlib import Path

from openmm import app, unit

from .common import (RunFailed, UsageError, barostatOf, buildSystem, checkNumbers, initialVelocities, makeSimulation,
                     plotAcceptance, prepareOutput, settings, writeJSON)


def _progress(total, disable):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="step", disable=disable, file=sys.stderr, dynamic_ncols=True)


# ---- run -----------------------------------------------------------------------------------------

CURVE_EVERY = 100  # steps per point of the learning curve (acceptance against run time)
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
    velocities = initialVelocities(example, args)
    sim = makeSimulation(args, example)
    # Rank 0 only from here on.
    sim.context.setPositions(example.positions)
    sim.context.setVelocities(velocities)
    elapsedBefore = 0.0
    if args.resume:
        from ..checkpoint import CheckpointError

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
    npt = barostatOf(example) is not None
    sim.reporters.append(app.StateDataReporter(str(folder / "log.csv"), interval, step=True, time=True,
                                               potentialEnergy=True, kineticEnergy=True, totalEnergy=True,
                                               temperature=True, volume=npt, density=npt, speed=True,
                                               append=append and (folder / "log.csv").exists()))
    from ..reporters import StatisticsReporter

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
    curve, counted = [], (sim.statistics.accepted, sim.statistics.rejected + sim.statistics.fallbacks)
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
        if done % CURVE_EVERY == 0 or done == args.steps:  # the learning curve: acceptance per block of steps
            now = (sim.statistics.accepted, sim.statistics.rejected + sim.statistics.fallbacks)
            decided = (now[0] - counted[0]) + (now[1] - counted[1])
            curve.append({"step": done, "seconds": round(time.perf_counter() - start, 3),
                          "acceptance": (now[0] - counted[0]) / decided if decided else None})
            counted = now
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
               "verifiers": K, "resumed": bool(args.resume), **_serialComparison(sim, args.steps - first, wall
                                                                                - elapsedBefore),
               "settings": settings(args, example), "statistics": s.asDict(), "acceptance_curve": curve,
               **({"learned": sim.correction.fitReport(sim.coefficients)} if hasattr(sim.correction, "fitReport")
                  else {}),
               "files": [n for n in RUN_FILES if n != "summary.json"]}
    plotAcceptance(folder / "acceptance.png", s.acceptanceByPosition, s.expectedAcceptanceByPosition,
                   f"{example.name}: acceptance {s.acceptanceRate:.2f}, {s.stepsPerRound:.2f} steps per round")
    writeJSON(folder / "summary.json", summary)
    moves = f", {s.volumeMovesAccepted} of {s.volumeMoves} volume moves accepted" if npt else ""
    print(f"acceptance {s.acceptanceRate:.3f}, {s.stepsPerRound:.2f} steps per round{moves}, "
          f"{summary['ns_per_day']:.2f} ns/day; wrote {folder}/summary.json", file=sys.stderr)
    print(_paid(summary, K), file=sys.stderr)
    return summary


def _serialComparison(sim, steps, wall):
    """What the serial run of these steps would have taken: the measured time of one target call times the
    number of steps (the serial integrator makes one target call per step), next to this run's."""
    verifier = sim.verifier
    perCall = verifier.targetSeconds / verifier.numEvaluations if verifier.numEvaluations else None
    serial = None if perCall is None else perCall * steps
    return {"target_seconds_per_call": perCall, "serial_estimate_seconds": serial, "run_seconds": wall,
            "speedup_over_serial": None if serial is None or not wall > 0 else serial / wall}


def _paid(summary, verifiers):
    """The closing line: did the run pay, and, in one process, how to make it pay."""
    serial, own, perCall = summary["serial_estimate_seconds"], summary["run_seconds"], summary["target_seconds_per_call"]
    if serial is None:
        return "no target call was timed"
    line = (f"a serial run would have taken about {serial:.1f} s ({perCall * 1e3:.1f} ms per target call x "
            f"{summary['steps'] if not summary['resumed'] else 'these'} steps); this run took {own:.1f} s")
    if verifiers:
        return line + f": {summary['speedup_over_serial']:.2f}x with {verifiers} verifier ranks"
    command = " ".join(["openmm-lsd"] + [a for a in sys.argv[1:] if a != "--overwrite"] + ["--verifiers", "8",
                                                                                         "--overwrite"])
    return (line + ". In one process LSD verifies one step at a time and cannot beat the serial run; verifier "
            f"ranks evaluate drafted steps in parallel (one core or GPU each): {command}")
