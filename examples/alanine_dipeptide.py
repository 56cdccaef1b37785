"""Alanine dipeptide: an implicit-solvent (GBn2) target drafted by the same force field in vacuum.

    python examples/alanine_dipeptide.py [steps]

A real OpenMM force field on both sides: the target is Amber14 with the GBn2
implicit-solvent model, the draft Amber14 alone.  The run is exact with respect
to LangevinMiddleIntegrator on the target; the script prints acceptance and
steps per round.
"""

import sys
from importlib import resources

from openmm import app, unit

from openmm_lsd import SpeculativeSimulation

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
pdb = app.PDBFile(str(resources.files("openmm_lsd") / "data" / "alanine-dipeptide.pdb"))
settings = dict(nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
target = app.ForceField("amber14-all.xml", "implicit/gbn2.xml").createSystem(pdb.topology, **settings)
draft = app.ForceField("amber14-all.xml").createSystem(pdb.topology, **settings)

sim = SpeculativeSimulation(pdb.topology, target, draft, 300 * unit.kelvin, 1 / unit.picosecond,
                            2 * unit.femtoseconds, window=8, draftCorrection="offset", platform="Reference",
                            seed=2026)
sim.context.setPositions(pdb.positions)
sim.minimizeEnergy()
sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
sim.reporters.append(app.StateDataReporter(sys.stdout, max(steps // 5, 1), step=True, potentialEnergy=True,
                                           temperature=True))
sim.step(steps)

s = sim.statistics
print(f"steps {s.steps}  acceptance {s.acceptanceRate:.3f}  steps per round {s.stepsPerRound:.2f}  "
      f"(window {s.window}, lag {sim.correction.lag}, seed {sim.seed})")
print("acceptance by window position:", " ".join(f"{a:.2f}" for a in s.acceptanceByPosition))
