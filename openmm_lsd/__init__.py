"""openmm-lsd: Langevin Speculative Dynamics for OpenMM.

A cheap draft System proposes Langevin steps, an expensive target System
verifies them in parallel, and a reflection-maximal coupling keeps the accepted
trajectory's law exactly that of the serial target run (see DESIGN.md).
"""

from .controller import stepNoise
from .coupling import acceptanceProbability, couple
from .integrators import LeapfrogLangevinIntegrator
from .reporters import StatisticsReporter
from .simulation import SpeculativeSimulation
from .statistics import Statistics
from .verifiers import BatchedVerifier, InProcessVerifier, Verifier
from .verifiers.mpi import assignDevice

__version__ = "0.1.0"

__all__ = [
    "SpeculativeSimulation",
    "LeapfrogLangevinIntegrator",
    "Statistics",
    "StatisticsReporter",
    "Verifier",
    "InProcessVerifier",
    "BatchedVerifier",
    "assignDevice",
    "acceptanceProbability",
    "couple",
    "stepNoise",
    "__version__",
]
