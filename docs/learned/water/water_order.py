"""Water (8 rigid waters, GFN2-xTB / TIP3P), the learned correction by extrapolation order: 1000 steps, window 16,
lag 8, 2 fs, seed 1, velocities from setVelocitiesToTemperature(300, 1) (not the CLI's), in one process.

    OMP_NUM_THREADS=1 python docs/learned/water/water_order.py FRICTION ORDER
"""

import sys
from openmm_lsd import SpeculativeSimulation
from openmm_lsd.corrections import LearnedCorrection
from openmm_lsd.testsystems import water
friction, order = float(sys.argv[1]), int(sys.argv[2])
ex = water(8)
sim = SpeculativeSimulation(ex.topology, ex.target, ex.draft, 300, friction, 0.002, window=16,
                            draftCorrection=LearnedCorrection(8, order=order), correctionLag=8, platform="Reference", seed=1)
sim.context.setPositions(ex.positions)
sim.context.setVelocitiesToTemperature(300, 1)
sim.step(1000)
print(friction, order, sim.statistics.acceptanceRate, sim.statistics.stepsPerRound, flush=True)
