"""Run by tests under mpiexec: a short LSD run of the toy system; rank 0 saves the trajectory.

    mpiexec -n K+1 python tests/mpi_run.py OUT.npy [--fail-rank R] [--die-rank R] [--hang-rank R] [--timeout S]

``--system npt``: the constant-pressure box of tests/npt.py instead (frames then end with the box);
``--system periodic``: the periodic chain of tests/systems.py, whose box and global parameter ``eps`` can be
changed on ``sim.context`` after construction (``--set-box``, ``--set-parameter``), or its per-particle
parameters with ``updateParametersInContext`` (``--update-per-particle``, on rank 0 only, as a script does it).
``--system sevennet``: Cu13 with the real SevenNet-0 target and the Sutton-Chen draft.
``--record-evaluations FILE`` (in-process) saves every position the target was evaluated at;
``--fail-off-path FILE`` makes the verifier ranks' target raise at any position not in FILE.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import npt  # noqa: E402
from systems import periodicChain, periodicStart, startPositions, startVelocities, topology, toyPair  # noqa: E402

from openmm_lsd import SpeculativeSimulation  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--fail-rank", type=int, default=None)
parser.add_argument("--hang-rank", type=int, default=None)
parser.add_argument("--die-rank", type=int, default=None)
parser.add_argument("--timeout", type=float, default=600.0)
parser.add_argument("--verifier", default=None)
parser.add_argument("--window", type=int, default=4)
parser.add_argument("--correction", default="offset")
parser.add_argument("--checkpoint", default=None, help="save a checkpoint here after --stop-after rounds of 5 steps")
parser.add_argument("--stop-after", type=int, default=None)
parser.add_argument("--resume", default=None, help="continue from this checkpoint")
parser.add_argument("--delay", type=float, default=0.0, help="seconds each target evaluation also takes")
parser.add_argument("--checkpoint-on-failure", default=None, help="on a fault, save the last accepted step here")
parser.add_argument("--system", choices=("toy", "npt", "periodic", "sevennet"), default="toy")
parser.add_argument("--set-box", type=float, default=None, help="box edge (nm) set on sim.context")
parser.add_argument("--set-parameter", type=float, default=None, help="eps set on sim.context")
parser.add_argument("--update-per-particle", action="store_true")
parser.add_argument("--record-evaluations", default=None)
parser.add_argument("--fail-off-path", default=None)
args = parser.parse_args()

rank = int(os.environ.get("PMI_RANK", "0"))
if args.system == "npt":
    target, draft = npt.systems()
    top, (x0, v0) = npt.topology(), npt.start()
elif args.system == "periodic":
    target, draft = periodicChain(), periodicChain(epsilon=0.6, sigma=0.21, bond=1000.0)
    top, (x0, v0) = topology(4), periodicStart()
elif args.system == "sevennet":  # Cu13: SevenNet-0 target (its model loaded on every rank), Sutton-Chen draft
    from openmm_lsd import testsystems

    example = testsystems.copper("cluster", 13, model="sevennet-0")
    target, draft, top = example.target, example.draft, example.topology
    x0 = np.asarray(example.positions)
    v0 = np.random.default_rng(4).normal(0.0, 0.2, x0.shape)
else:
    kw = dict(constraint=True, cmm=3)
    target, draft = toyPair(**kw)
    top, x0, v0 = topology(3), startPositions(), startVelocities()
n = target.getNumParticles()


def faulty(state):
    if args.fail_rank == rank:
        raise ValueError("model exploded")
    if args.die_rank == rank:
        os._exit(3)
    if args.hang_rank == rank:
        time.sleep(3600)
    return 0.0, np.zeros((n, 3))


if rank in (args.fail_rank, args.die_rank, args.hang_rank):
    import openmm

    target.addForce(openmm.PythonForce(faulty))
elif args.delay:
    import openmm

    def slow(state):
        time.sleep(args.delay)
        return 0.0, np.zeros((n, 3))

    target.addForce(openmm.PythonForce(slow))

evaluated = []
if args.record_evaluations:
    import openmm

    def record(state):
        evaluated.append(state.getPositions(asNumpy=True)._value.copy())
        return 0.0, np.zeros((n, 3))

    target.addForce(openmm.PythonForce(record))
if args.fail_off_path and rank > 0:
    import openmm

    path = np.load(args.fail_off_path)

    def onPath(state):
        x = state.getPositions(asNumpy=True)._value
        if not np.any(np.all(np.abs(path - x) < 1e-12, axis=(1, 2))):
            raise ValueError("evaluated off the accepted path")
        return 0.0, np.zeros((n, 3))

    target.addForce(openmm.PythonForce(onPath))

correction = args.correction
if correction == "learned":  # refitted every 4 steps from the second accepted frame on: in force within the run
    from openmm_lsd.corrections import LearnedCorrection

    correction = LearnedCorrection(2, every=4, minFrames=2)
sim = SpeculativeSimulation(top, target, draft, 300, 5.0, 0.004, window=args.window,
                            draftCorrection=correction, correctionLag=2, platform="Reference", seed=3,
                            verifier=args.verifier, verifierTimeout=args.timeout)
sim.context.setPositions(x0)
sim.context.setVelocities(v0)
if args.set_box is not None:
    sim.context.setPeriodicBoxVectors(*(np.eye(3) * args.set_box))
if args.set_parameter is not None:
    sim.context.setParameter("eps", args.set_parameter)
if args.update_per_particle:
    bonds = [f for f in target.getForces() if f.getName() == "HarmonicBondForce"][0]
    bonds.setBondParameters(0, 0, 1, 0.2, 1800.0)
    bonds.updateParametersInContext(sim.context)
frames = []


def frame():
    state = sim.context.getState(getPositions=True, getVelocities=True)
    parts = [state.getPositions(asNumpy=True)._value, state.getVelocities(asNumpy=True)._value]
    if args.system in ("npt", "periodic"):
        parts.append(state.getPeriodicBoxVectors(asNumpy=True)._value)
    return np.concatenate(parts)


if args.resume:
    sim.loadCheckpoint(args.resume)
    frames = list(np.load(args.out))
    if sim.currentStep % 5:  # a checkpoint taken at a fault may sit between two saved frames
        sim.step(5 - sim.currentStep % 5)
        frames.append(frame())
for _ in range(len(frames), 12):
    if args.stop_after is not None and len(frames) == args.stop_after:
        sim.saveCheckpoint(args.checkpoint)
        break
    try:
        sim.step(5)
    except RuntimeError as exc:
        if not args.checkpoint_on_failure:
            raise
        sim.saveCheckpoint(args.checkpoint_on_failure)
        np.save(args.out, np.array(frames))
        print(f"stopped at step {sim.currentStep}: {exc}", flush=True)
        sys.exit(3)
    frames.append(frame())
np.save(args.out, np.array(frames))
if args.record_evaluations:
    np.save(args.record_evaluations, np.array(evaluated))
print("statistics", sim.statistics, "volume moves", sim.statistics.volumeMovesAccepted, "of",
      sim.statistics.volumeMoves, "verifier", type(sim.verifier).__name__, flush=True)
