"""The search for a configuration in which the law test rejects a leak through the learned correction's local
response (``testing.LeakIntoTheResponse``), fourth session of issue #14 (docs/exactness.md).

    python tests/response_leak_search.py middle-learned | A | B [control ...]    (controls: exact, LeakIntoTheResponse)
    python tests/response_leak_search.py size                                    (the response's size in one run)

A and B: one particle in the stiff well of the ``leak`` configuration, the learned correction (the law tests'
small basis) refitted every 2 steps over 8 steps (A) or every step over 6 (B), lag 2, R = 10,000. Measured:
LeakIntoTheResponse p = 1 in middle-learned, A and B (exact B: p = 1). ``size``: the response term against the
whole correction at the steps after a rejection, seed 5, 30 steps (1-4%: a few kJ/mol/nm against ~2,000).
"""

import os
import sys
from functools import partial

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import exactness as E  # noqa: E402
import test_exactness as T  # noqa: E402
from exactness import two_sample_p  # noqa: E402

from openmm_lsd import SpeculativeSimulation  # noqa: E402
from openmm_lsd.corrections import LearnedCorrection  # noqa: E402
from systems import topology  # noqa: E402

STIFF = dict(scheme="LangevinMiddle", constraint=False, cmm=None, lag=2, kind="stiff", reps=10_000)
T.CONFIGS["A"] = dict(STIFF, steps=8, correction=partial(LearnedCorrection, 2, every=2, minFrames=1,
                                                         basis=T.SMALL_BASIS))
T.CONFIGS["B"] = dict(STIFF, steps=6, correction=partial(LearnedCorrection, 2, every=1, minFrames=1,
                                                         basis=T.SMALL_BASIS))


def size():
    target, draft = E.make_systems(False, None, False, 0.15, kind="stiff")
    correction = LearnedCorrection(2, every=2, minFrames=1, basis=T.SMALL_BASIS)
    sim = SpeculativeSimulation(topology(target.getNumParticles()), target, draft, E.TEMPERATURE, E.FRICTION, E.DT,
                                window=4, draftCorrection=correction, correctionLag=2, platform="Reference", seed=5,
                                _control="LeakIntoTheResponse")
    x0, v0 = E.start("stiff", False)
    sim.context.setPositions(x0)
    sim.context.setVelocities(v0)
    original = LearnedCorrection._localResponse

    def spy(self, j, s, origin, differences, start, predicted, anchor):
        term = original(self, j, s, origin, differences, start, predicted, anchor)
        leaked = getattr(self, "leaked", None)
        if leaked is not None and term is not None:
            self.leaked = None
            plain = original(self, j, s, origin, differences, start, predicted, anchor)
            self.leaked = leaked
            total = LearnedCorrection.combine(self, j, origin, self._controller.frontier.restartStep, differences)
            print(j, "response", float(np.abs(term).max()), "without the leak",
                  None if plain is None else float(np.abs(plain).max()), "correction", float(np.abs(total).max()))
        return term

    LearnedCorrection._localResponse = spy
    sim.step(30)


if __name__ == "__main__":
    if sys.argv[1] == "size":
        size()
    else:
        for control in sys.argv[2:] or ["LeakIntoTheResponse"]:
            lsd, statistics, reference = T.samples(sys.argv[1], None if control == "exact" else control)
            print(sys.argv[1], control, len(lsd), round(statistics.acceptanceRate, 3),
                  f"{two_sample_p(lsd, reference):.2g}", flush=True)
