"""Water (8 rigid waters, GFN2-xTB / TIP3P), the learned correction by extrapolation order: 1000 steps, window 16,
lag 8, 2 fs, seed 1, velocities from setVelocitiesToTemperature(300, 1) (not the CLI's), in one process.

    OMP_NUM_THREADS=1 python docs/learned/water/water_order.py FRICTION ORDER [OPTION=VALUE ...]

OPTIONs: seed=N (default 1), responseRidge=R and every=M (the learned correction's; defaults its own).
Prints friction, order, the acceptance, the steps per round and the mean exact acceptance probability.
"""

import sys

from openmm_lsd import SpeculativeSimulation
from openmm_lsd.corrections import LearnedCorrection
from openmm_lsd.testsystems import water

friction, order = float(sys.argv[1]), int(sys.argv[2])
options = dict(a.split("=", 1) for a in sys.argv[3:])
seed = int(options.pop("seed", 1))
settings = {k: (int(v) if k == "every" else float(v)) for k, v in options.items()}
ex = water(8)
sim = SpeculativeSimulation(ex.topology, ex.target, ex.draft, 300, friction, 0.002, window=16,
                            draftCorrection=LearnedCorrection(8, order=order, **settings), correctionLag=8,
                            platform="Reference", seed=seed)
sim.context.setPositions(ex.positions)
sim.context.setVelocitiesToTemperature(300, seed)
sim.step(1000)
s = sim.statistics
print(friction, order, s.acceptanceRate, s.stepsPerRound, s.expectedAcceptance / s.steps, flush=True)
