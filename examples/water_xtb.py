"""Eight rigid waters in vacuum: GFN2-xTB target (openmm-ml + tblite), rigid TIP3P draft.

    python examples/water_xtb.py [steps]

Runs offline: GFN2-xTB needs no downloaded weights (pip install 'openmm-lsd[xtb]').
The target is openmm-ml's ``ase`` potential with tblite's calculator, given the
draft's rigid-water constraints; the run is exact with respect to
LangevinMiddleIntegrator on that target.
"""

import sys

import mdtraj
from openmm import app, unit

from openmm_lsd import SpeculativeSimulation, StatisticsReporter
from openmm_lsd.targets import constrainLike, createDraft, createTarget
from openmm_lsd.testsystems import minimizeWith, waterCluster

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
topology, positions = waterCluster(8)
target = createTarget(topology, "gfn2-xtb")                             # openmm-ml 'ase' + tblite
draft = createDraft(topology, target, forcefield=("amber14/tip3p.xml",))  # rigid TIP3P, the target's masses
constrainLike(target, draft)                                            # the target gets the rigid waters too
positions = minimizeWith(draft, topology, positions)                    # with the draft: no xTB calls

sim = SpeculativeSimulation(topology, target, draft, 300 * unit.kelvin, 1 / unit.picosecond,
                            2 * unit.femtoseconds, window=8, seed=1)
sim.context.setPositions(positions)
sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
sim.reporters.append(app.DCDReporter("water_xtb.dcd", 10))
sim.reporters.append(StatisticsReporter(sys.stdout, max(steps // 5, 1)))
sim.step(steps)

s = sim.statistics
print(f"acceptance {s.acceptanceRate:.3f}, {s.stepsPerRound:.2f} steps per round over {s.steps} steps")
app.PDBFile.writeFile(topology, positions * unit.nanometer, open("water_xtb.pdb", "w"))
print(mdtraj.load("water_xtb.dcd", top="water_xtb.pdb"))
