"""A Cu13 icosahedral cluster: GFN1-xTB target (tblite), Sutton-Chen EAM draft.

    python examples/copper_cluster.py [steps] [target]         # target: gfn1-xtb (default) or sevennet-0
    mpiexec -n 9 python examples/copper_cluster.py [steps]     # 8 verifier ranks

The method's first showcase: a metal's force error after an offset stays smooth for
many steps, so acceptance is high (0.865 with the plain offset, 0.920 with the default
quadratic extrapolation, 200 steps at 1/ps: `openmm-lsd run --system copper-cluster`). Offline: pip install 'openmm-lsd[xtb]'.
"""

import sys

from openmm import app, unit

from openmm_lsd import SpeculativeSimulation
from openmm_lsd.testsystems import copper

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 500
target = sys.argv[2] if len(sys.argv) > 2 else "gfn1-xtb"  # or sevennet-0: the graph network, weights in sevenn
cluster = copper("cluster", 13, model=target)  # topology, positions, target (xTB: 3000 K electrons), EAM draft
sim = SpeculativeSimulation(cluster.topology, cluster.target, cluster.draft, 300 * unit.kelvin,
                            1 / unit.picosecond, 2 * unit.femtoseconds, window=8, seed=1)
sim.context.setPositions(cluster.positions)
sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
sim.reporters.append(app.DCDReporter("cu13.dcd", 10))
sim.step(steps)
sim.close()

s = sim.statistics
print(f"Cu13 ({target}): acceptance {s.acceptanceRate:.3f}, {s.stepsPerRound:.2f} steps per round over {s.steps} steps")
print("acceptance by window position:", " ".join(f"{a:.2f}" for a in s.acceptanceByPosition))
