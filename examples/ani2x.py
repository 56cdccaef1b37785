"""Alanine dipeptide with an ANI-2x target (openmm-ml) and an Amber14 draft.

    python examples/ani2x.py [steps]

ANI-2x needs torchani and downloads its weights on first use: on a machine
without them (or offline) the script says why and exits without running.
"""

import sys

from openmm import unit

from openmm_lsd import SpeculativeSimulation
from openmm_lsd.targets import constrainLike, createDraft, createTarget
from openmm_lsd.testsystems import alanineDipeptidePDB

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
pdb = alanineDipeptidePDB()
try:
    target = createTarget(pdb.topology, "ani2x")
except (ImportError, ValueError) as exc:
    print(f"SKIPPED: ANI-2x is not available here ({exc})")
    sys.exit(0)
draft = createDraft(pdb.topology, target, forcefield=("amber14-all.xml",))
constrainLike(target, draft)

sim = SpeculativeSimulation(pdb.topology, target, draft, 300 * unit.kelvin, 1 / unit.picosecond,
                            2 * unit.femtoseconds, window=8, seed=1)
sim.context.setPositions(pdb.positions)
sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
sim.step(steps)
print(f"acceptance {sim.statistics.acceptanceRate:.3f}, {sim.statistics.stepsPerRound:.2f} steps per round")
