"""Parallel verification: the same script on K+1 MPI ranks (rank 0 drafts, ranks 1..K verify).

    mpiexec -n 3 python examples/mpi_launch.py [steps]      # 2 verifier ranks
    python examples/mpi_launch.py [steps]                   # the same run in one process

Every rank runs this file top to bottom: each builds its own target System (this
is how openmm-ml models inside a PythonForce are cloned), then ranks > 0 serve
target evaluations inside the SpeculativeSimulation constructor and exit there.
Only rank 0 gets past it. The trajectory is the same for any number of ranks.
On a GPU cluster, OPENMM_LSD_DEVICES=0,1,2,3 (or CUDA_VISIBLE_DEVICES) spreads
ranks over devices; see openmm_lsd.assignDevice.
"""

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")  # xTB threads: one per rank on a small machine

from openmm import unit  # noqa: E402

from openmm_lsd import SpeculativeSimulation  # noqa: E402
from openmm_lsd.testsystems import water  # noqa: E402

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 500
example = water(8)  # GFN2-xTB target, rigid TIP3P draft
sim = SpeculativeSimulation(example.topology, example.target, example.draft, 300 * unit.kelvin,
                            10 / unit.picosecond, 2 * unit.femtoseconds, window=2, seed=1,
                            platform="Reference")  # bit-reproducible: the same trajectory on any rank count
sim.context.setPositions(example.positions)
sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
sim.step(steps)
sim.close()
s = sim.statistics
print(f"{getattr(sim.verifier, 'numVerifiers', 0)} verifier ranks: acceptance {s.acceptanceRate:.3f}, "
      f"{s.stepsPerRound:.2f} steps per round, {s.targetEvaluations} target evaluations")
