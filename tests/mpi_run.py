"""Run by tests under mpiexec: a short LSD run of the toy system; rank 0 saves the trajectory.

    mpiexec -n K+1 python tests/mpi_run.py OUT.npy [--fail-rank R] [--die-rank R] [--hang-rank R] [--timeout S]

``--system npt``: the constant-pressure box of tests/npt.py instead (frames then end with the box).
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import npt  # noqa: E402
from systems import startPositions, startVelocities, topology, toy  # noqa: E402

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
parser.add_argument("--system", choices=("toy", "npt"), default="toy")
args = parser.parse_args()

rank = int(os.environ.get("PMI_RANK", "0"))
if args.system == "npt":
    target, draft = npt.systems()
    top, (x0, v0) = npt.topology(), npt.start()
else:
    kw = dict(constraint=True, cmm=3)
    target = toy(**kw)
    draft = toy(k=(250.0, 400.0, 450.0), bond=1500.0, shift=0.3, ripple=0.15, **kw)
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

sim = SpeculativeSimulation(top, target, draft, 300, 5.0, 0.004, window=args.window,
                            draftCorrection=args.correction, correctionLag=2, platform="Reference", seed=3,
                            verifier=args.verifier, verifierTimeout=args.timeout)
sim.context.setPositions(x0)
sim.context.setVelocities(v0)
frames = []


def frame():
    state = sim.context.getState(getPositions=True, getVelocities=True)
    parts = [state.getPositions(asNumpy=True)._value, state.getVelocities(asNumpy=True)._value]
    if args.system == "npt":
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
print("statistics", sim.statistics, "volume moves", sim.statistics.volumeMovesAccepted, "of",
      sim.statistics.volumeMoves, "verifier", type(sim.verifier).__name__, flush=True)
