"""The former home of :mod:`openmm_lsd.targets` (targets and drafts) and :mod:`openmm_lsd.testsystems`
(the named example systems): every name is still here, for scripts written before the split."""

from .targets import (DEFAULT_FORCEFIELD, DOWNLOADED_MODELS, XTB_METHODS, constrainLike,
                      createDraft, createTarget, xtbCalculator)
from .testsystems import (EXAMPLES, SUTTON_CHEN_CU, Example, alanineDipeptide, alanineDipeptidePDB,
                          alanineDipeptideWater, copper, copperBulk, copperCluster, example, fccBox, icosahedron,
                          minimizeWith, suttonChenForce, tip3p, water, waterBox, waterBoxTopology, waterCluster)

__all__ = ["DEFAULT_FORCEFIELD", "DOWNLOADED_MODELS", "XTB_METHODS", "constrainLike", "createDraft", "createTarget",
           "xtbCalculator", "EXAMPLES", "SUTTON_CHEN_CU", "Example", "alanineDipeptide", "alanineDipeptidePDB",
           "alanineDipeptideWater", "copper", "copperBulk", "copperCluster", "example", "fccBox", "icosahedron",
           "minimizeWith", "suttonChenForce", "tip3p", "water", "waterBox", "waterBoxTopology", "waterCluster"]
