"""The draft step's cost with the learned model in it, numpy PythonForce against OpenMM custom forces.

    OMP_NUM_THREADS=1 python docs/learned/draft_step_cost.py > docs/learned/draft-step-cost.json

LangevinMiddle steps of the Sutton-Chen draft (Cu13, Cu55, fcc Cu32 and Cu108) on the Reference platform, in
one process: the draft alone, and with the default 21-term model added by ``PairEmbeddingModel.addTo`` with
``draftForces='custom'`` and ``'numpy'`` at fixed random coefficients; median over 5 blocks of 100 steps
(20 for Cu108), the three variants alternating block by block.  ``NUMPY_WORK`` (openmm_lsd.learned) is set
from these figures and the 8-water example's.
"""

import json
import time

import numpy as np
import openmm

from openmm_lsd.learned import NUMPY_WORK, PairEmbeddingModel
from openmm_lsd.testsystems import copper


def context(system, positions, model=None):
    integrator = openmm.LangevinMiddleIntegrator(300, 1, 0.002)
    integrator.setRandomNumberSeed(1)
    c = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    c.setPositions(positions)
    c.setVelocitiesToTemperature(300, 1)
    if model is not None:
        model.apply(c, np.random.default_rng(0).normal(size=model.numParameters) * 1e-3)
    integrator.step(2)
    return c


def main():
    out = {"numpy_work": NUMPY_WORK, "systems": {}}
    for label, (kind, size, steps) in {"Cu13": ("cluster", 13, 100), "Cu32 (fcc)": ("bulk", 32, 100),
                                       "Cu55": ("cluster", 55, 100), "Cu108 (fcc)": ("bulk", 108, 20)}.items():
        cu = copper(kind, size)
        contexts, pairs = {"draft alone": context(openmm.XmlSerializer.clone(cu.draft), cu.positions)}, None
        for forces in ("custom", "numpy"):
            system = openmm.XmlSerializer.clone(cu.draft)
            model = PairEmbeddingModel(system, draftForces=forces)
            model.addTo(system)
            pairs = len(model._i)
            contexts[forces] = context(system, cu.positions, model)
        times = {name: [] for name in contexts}
        for _ in range(5):
            for name, c in contexts.items():
                start = time.perf_counter()
                c.getIntegrator().step(steps)
                times[name].append((time.perf_counter() - start) / steps * 1e3)
        out["systems"][label] = {"pairs": pairs, "ms_per_step": {k: float(np.median(v)) for k, v in times.items()},
                                 "coefficients": model.numParameters,
                                 "auto": "numpy" if pairs * model.numParameters <= NUMPY_WORK else "custom"}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
