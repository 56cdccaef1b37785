"""openmm-lsd: Langevin Speculative Dynamics for OpenMM.

A cheap draft System proposes Langevin steps, an expensive target System
verifies them in parallel, and a reflection-maximal coupling keeps the accepted
trajectory's law exactly that of the serial target run (see DESIGN.md).
"""

from .checkpoint import CheckpointError
from .controller import stepNoise  # noqa: F401  (kept importable; an internal of the engine, not in __all__)
from .corrections import ExtrapolateCorrection, LearnedCorrection, NoCorrection, OffsetCorrection, RefitCorrection
from .coupling import acceptanceProbability, couple
from .integrators import LeapfrogLangevinIntegrator
from .models import SevenNetPotential
from .reporters import StatisticsReporter
from .simulation import SpeculativeSimulation
from .statistics import Statistics
from .targets import constrainLike, createDraft, createTarget
from .verifiers import BatchedVerifier, Evaluation, InProcessVerifier, Verifier
from .verifiers.mpi import assignDevice

__version__ = "0.1.0"

__all__ = [
    "SpeculativeSimulation",
    "LeapfrogLangevinIntegrator",
    "Statistics",
    "StatisticsReporter",
    "Verifier",
    "Evaluation",
    "InProcessVerifier",
    "BatchedVerifier",
    "assignDevice",
    "createTarget",
    "createDraft",
    "constrainLike",
    "NoCorrection",
    "OffsetCorrection",
    "ExtrapolateCorrection",
    "RefitCorrection",
    "LearnedCorrection",
    "SevenNetPotential",
    "CheckpointError",
    "acceptanceProbability",
    "couple",
    "__version__",
]
