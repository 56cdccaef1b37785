"""Acceptance of a correction on Cu13 (GFN1-xTB target, Sutton-Chen draft, 2 fs, 300 K) over steps 500-1500.

    python docs/learned/copper_acceptance.py CORRECTION FRICTION WINDOW_AND_LAG [STEPS] [OPTION=VALUE ...] > OUT.json

OPTIONs of the learned correction: angular=0.03,0.06,0.12 (three-body lengths, nm), every=50,
order=2, horizon=LAG (the residual's extrapolation), objective=lag|forces, forceWeight=0.1 (the fit's),
response=16 (frames of the local response; 0: off), responseRidge=1e-3.

One in-process run (acceptance does not depend on the verifiers, DESIGN.md section 9), seed 1 (seed=N),
the Reference platform; statistics reset at step 500, so the figures are those of steps 500-STEPS.
``expected_acceptance`` is the mean exact acceptance probability 2 Phi(-|m|/2) of those steps: the same
quantity as the accepted fraction, with less noise (no coin flip).
"""

import json
import sys
import time

from openmm_lsd import SpeculativeSimulation
from openmm_lsd.corrections import FORCE_WEIGHT, RESPONSE_RIDGE, LearnedCorrection
from openmm_lsd.testsystems import copper

correction, friction, window = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
positional = [a for a in sys.argv[4:] if "=" not in a]
options = dict(a.split("=", 1) for a in sys.argv[4:] if "=" in a)
seed = int(options.pop("seed", 1))
steps = int(positional[0]) if positional else 1500
if options:
    assert correction == "learned", "options are the learned correction's"
    correction = LearnedCorrection(window, every=int(options.get("every", 50)), order=int(options.get("order", 2)),
                                   horizon=int(options["horizon"]) if "horizon" in options else None,
                                   objective=options.get("objective"),
                                   response=int(options["response"]) if "response" in options else None,
                                   forceWeight=float(options.get("forceWeight", FORCE_WEIGHT)),
                                   responseRidge=float(options.get("responseRidge", RESPONSE_RIDGE)),
                                   basis=dict(angularLengths=tuple(float(v) for v in options.get("angular", "").split(",")
                                                                   if v)))
cluster = copper("cluster", 13)
sim = SpeculativeSimulation(cluster.topology, cluster.target, cluster.draft, 300, friction, 0.002, window=window,
                            draftCorrection=correction, correctionLag=window, platform="Reference", seed=seed)
sim.context.setPositions(cluster.positions)
sim.context.setVelocitiesToTemperature(300, seed)
start = time.perf_counter()
sim.step(500)
sim.resetStatistics()
sim.step(steps - 500)
s = sim.statistics
out = {"correction": correction if isinstance(correction, str) else correction.name, "options": options, "seed": seed,
       "friction_per_ps": friction, "window": window, "lag": window, "steps": [500, steps],
       "acceptance": s.acceptanceRate, "steps_per_round": s.stepsPerRound,
       "expected_acceptance": s.expectedAcceptance / max(s.steps, 1),
       "acceptance_by_position": s.acceptanceByPosition, "wall_seconds": time.perf_counter() - start,
       "draft_seconds_per_step": s.draftSeconds / max(s.draftSteps, 1),
       "target_seconds_per_call": sim.verifier.targetSeconds / max(sim.verifier.numEvaluations, 1)}
if hasattr(sim.correction, "fitReport"):
    out["learned"] = sim.correction.fitReport(sim.coefficients)
print(json.dumps(out, indent=1))
