"""A serial openmm-ml script made speculative: openmmtools' alanine dipeptide (Amber, rigid H bonds) drafts
for GFN2-xTB (openmm-ml's ``ase`` potential with tblite), with OpenMM's own reporters.

    python examples/openmm_script_alanine_xtb.py [STEPS [OUTPUT_FOLDER [CHECKPOINT_TO_RESUME]]]

The serial script it replaces differs in one line (and the draft)::

    simulation = app.Simulation(ala.topology, target, integrator)                       # serial
    simulation = SpeculativeSimulation(ala.topology, target, ala.system, integrator)    # speculative

Its CheckpointReporter file resumes the run exactly (bit for bit on the Reference platform with
OMP_NUM_THREADS=1: tblite's threads otherwise change the last bits of the forces).
"""

import sys
from pathlib import Path

import openmm
from openmm import app, unit
from openmmtools import testsystems

from openmm_lsd import SpeculativeSimulation, constrainLike, createTarget

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
folder = Path(sys.argv[2] if len(sys.argv) > 2 else "alanine-xtb")
resume = sys.argv[3] if len(sys.argv) > 3 else None
folder.mkdir(parents=True, exist_ok=True)

ala = testsystems.AlanineDipeptideVacuum(constraints=app.HBonds)  # the draft: its System as it comes
target = constrainLike(createTarget(ala.topology, "gfn2-xtb"), ala.system)  # GFN2-xTB with the draft's H bonds
integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 10 / unit.picosecond, 1 * unit.femtoseconds)
integrator.setRandomNumberSeed(11)
simulation = SpeculativeSimulation(ala.topology, target, ala.system, integrator, window=4, platform="Reference")
simulation.context.setPositions(ala.positions)
simulation.minimizeEnergy(maxIterations=50)
simulation.context.setVelocitiesToTemperature(300 * unit.kelvin, 5)
if resume is not None:
    simulation.loadCheckpoint(resume)
simulation.reporters.append(app.StateDataReporter(str(folder / "log.csv"), 5, step=True, potentialEnergy=True,
                                                  temperature=True))
simulation.reporters.append(app.DCDReporter(str(folder / "trajectory.dcd"), 5))
simulation.reporters.append(app.CheckpointReporter(str(folder / "checkpoint.lsd"), 10))
simulation.reporters.append(app.PDBReporter(str(folder / "trajectory.pdb"), 10))
simulation.step(steps)
state = simulation.context.getState(getPositions=True, getVelocities=True)
with open(folder / "final.xml", "w") as f:
    f.write(openmm.XmlSerializer.serialize(state))
print(f"step {simulation.currentStep}, acceptance {simulation.statistics.acceptanceRate:.3f}")
