"""Predicting acceptance and speedup.

:func:`estimate` takes a short in-process sample of speculative steps (one target
evaluation per step, no MPI, no parallel run) and averages, by window position,
the exact acceptance probability 2 Phi(-|m|/2) of each verified step: the
conditional acceptance at position j given positions 0..j-1 accepted, with less
noise than the accepted fraction.  From these alpha_j it predicts steps per round
E = sum_j prod_{i<j} alpha_i and the speedup bound of DESIGN.md section 7 for K
verifiers, with the T_t and T_d measured on the way.  (Accepting every draft
instead, to sample all window positions equally, was tried and is biased: a
forced acceptance puts the draft's displacement into the target velocity, so
later positions look worse than they are.)

The comparison of LSD with the serial run (``compareSamples``, the test of ``openmm-lsd
validate``) lives in :mod:`openmm_lsd.validation`; its names stay importable from here.
"""

import math
import time

import numpy as np

from .statistics import speedupBound
from .validation import compareSamples, statisticalInefficiency  # noqa: F401  (their former home)


def stepsPerRound(alphaByPosition):
    """E = sum_{j<k} prod_{i<j} alpha_i for per-position acceptance rates (window k = their number)."""
    total, survive = 0.0, 1.0
    for alpha in alphaByPosition:
        total += survive
        survive *= alpha
    return total


def estimate(simulationFactory, positions, velocities, steps=400, verifiers=(1, 2, 4, 8, 16)):
    """Predict acceptance by window position, steps per round and speedups without running LSD.

    Parameters
    ----------
    simulationFactory : callable
        ``simulationFactory()`` returns a new in-process
        :class:`~openmm_lsd.SpeculativeSimulation` with the run's settings.
    positions, velocities
        The starting state.
    steps : int
        Sampled steps (one serial target evaluation each), after a warm-up of
        window + lag steps (the correction needs verified history first) that is not counted.
    """
    sim = simulationFactory()
    try:
        sim.context.setPositions(positions)
        sim.context.setVelocities(velocities)
        sim.step(sim.window + (sim.correction.lag or 0))
        sim.resetStatistics()
        evaluations, targetSeconds = sim.verifier.numEvaluations, sim.verifier.targetSeconds
        start = time.perf_counter()
        sim.step(steps)
        wall = time.perf_counter() - start
        s = sim.statistics
        alpha = s.expectedAcceptanceByPosition
        observed = [a for a in alpha if not math.isnan(a)]
        alpha = [a if not math.isnan(a) else (observed[-1] if observed else 0.0) for a in alpha]
        targetSeconds = (sim.verifier.targetSeconds - targetSeconds) / max(sim.verifier.numEvaluations - evaluations, 1)
        draftSeconds = s.draftSeconds / max(s.draftSteps, 1)
        E = stepsPerRound(alpha)
        window = sim.window
        return {
            "sampled_steps": s.steps,
            "window": window,
            "draftCorrection": sim.correction.name,
            "lag": sim.correction.lag,
            "scheme": sim.scheme,
            "predicted_acceptance_by_position": alpha,
            "predicted_acceptance": float(np.mean([a for a in alpha])),
            "predicted_steps_per_round": E,
            "target_seconds": targetSeconds,
            "draft_seconds": draftSeconds,
            "predicted_speedup": {str(K): speedupBound(E, window, K, targetSeconds, draftSeconds) for K in verifiers},
            "wall_seconds": wall,
        }
    finally:
        sim.close()
