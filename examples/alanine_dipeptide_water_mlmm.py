"""Alanine dipeptide in TIP3P water as ML/MM: the solute with GFN2-xTB, everything else Amber14/TIP3P.

    python examples/alanine_dipeptide_water_mlmm.py [steps]

The target is openmm-ml's createMixedSystem (mechanical embedding) with the 22
solute atoms as the xTB region; the draft is the all-classical System, so
target and draft differ only on the solute (DESIGN.md section 7). Offline.
"""

import sys

from openmm import app, unit

from openmm_lsd import SpeculativeSimulation
from openmm_lsd.targets import constrainLike, createTarget
from openmm_lsd.testsystems import alanineDipeptidePDB

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 500
pdb = alanineDipeptidePDB()
forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
modeller = app.Modeller(pdb.topology, pdb.positions)
modeller.addSolvent(forcefield, model="tip3p", padding=0.9 * unit.nanometer)
mm = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                             constraints=app.HBonds)
solute = [atom.index for atom in modeller.topology.atoms() if atom.residue.name != "HOH"]
target = constrainLike(createTarget(modeller.topology, "gfn2-xtb", mmSystem=mm, mlAtoms=solute), mm)

sim = SpeculativeSimulation(modeller.topology, target, mm, 300 * unit.kelvin, 1 / unit.picosecond,
                            2 * unit.femtoseconds, window=8, seed=1)
sim.context.setPositions(modeller.positions)
sim.minimizeEnergy(maxIterations=100)
sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
sim.step(steps)

s = sim.statistics
print(f"{modeller.topology.getNumAtoms()} atoms, xTB on {len(solute)}: acceptance {s.acceptanceRate:.3f}, "
      f"{s.stepsPerRound:.2f} steps per round over {s.steps} steps")
