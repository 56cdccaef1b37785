"""Rigid waters in a periodic box at 1 bar: periodic GFN2-xTB target with OpenMM's MonteCarloBarostat,
rigid TIP3P (PME) draft.

    python examples/water_box_npt.py [steps] [box edge in nm]

Runs offline (pip install 'openmm-lsd[xtb]'). The barostat is an ordinary
``MonteCarloBarostat`` in the target System (every 25 steps, OpenMM's default); the
controller makes its volume moves with OpenMM's rule, so the run has the law of
LangevinMiddleIntegrator + MonteCarloBarostat on the target. The draft has no barostat.
Periodic GFN2-xTB is slow on a CPU (~3-6 s per call for the 32 waters of a 1.0 nm box
on 2 cores): this shows the setup, not a speedup.
"""

import sys

import mdtraj
import openmm
from openmm import app, unit

from openmm_lsd import SpeculativeSimulation, StatisticsReporter
from openmm_lsd.targets import constrainLike, createDraft, createTarget
from openmm_lsd.testsystems import minimizeWith

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
edge = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0

forcefield = app.ForceField("amber14/tip3p.xml")
modeller = app.Modeller(app.Topology(), [])
modeller.addSolvent(forcefield, model="tip3p", boxSize=openmm.Vec3(edge, edge, edge) * unit.nanometer)
topology = modeller.topology
target = createTarget(topology, "gfn2-xtb")                         # periodic xTB: the topology has a box
target.setDefaultPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
draft = createDraft(topology, target, forcefield=("amber14/tip3p.xml",),
                    nonbondedCutoff=0.49 * edge * unit.nanometer)    # rigid TIP3P with PME
constrainLike(target, draft)                                        # rigid waters in the target too
target.addForce(openmm.MonteCarloBarostat(1 * unit.bar, 300 * unit.kelvin))
positions = minimizeWith(draft, topology, modeller.positions)

sim = SpeculativeSimulation(topology, target, draft, 300 * unit.kelvin, 1 / unit.picosecond,
                            2 * unit.femtoseconds, window=8, seed=1)
sim.context.setPositions(positions)
sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
sim.reporters.append(app.DCDReporter("water_box_npt.dcd", 10))
sim.reporters.append(app.StateDataReporter(sys.stdout, max(steps // 5, 1), step=True, volume=True, density=True))
sim.reporters.append(StatisticsReporter(sys.stdout, max(steps // 5, 1)))
sim.step(steps)

s = sim.statistics
print(f"acceptance {s.acceptanceRate:.3f}, {s.stepsPerRound:.2f} steps per round over {s.steps} steps; "
      f"{s.volumeMovesAccepted} of {s.volumeMoves} volume moves accepted")
app.PDBFile.writeFile(topology, positions * unit.nanometer, open("water_box_npt.pdb", "w"))
traj = mdtraj.load("water_box_npt.dcd", top="water_box_npt.pdb")
print(traj, "volumes (nm^3):", traj.unitcell_volumes)
