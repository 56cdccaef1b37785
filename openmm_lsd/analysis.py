"""Predicting acceptance and speedup.

:func:`estimate` takes a short in-process sample of speculative steps (one target
evaluation per step, no MPI, no parallel run) and averages, by window position,
the exact acceptance probability 2 Phi(-|m|/2) of each verified step: the
conditional acceptance at position j given positions 0..j-1 accepted, with less
noise than the accepted fraction.  From these alpha_j it predicts steps per round
E = sum_j prod_{i<j} alpha_i and the speedup bound of DESIGN.md section 7 for K
verifiers, with the T_t and T_d measured on the way.  The sample is taken in four parts,
whose mean acceptance probabilities are the prediction's learning curve; for a correction
fitted during the run (``'learned'``, ``'refit'``) the prediction from the sample's second
half is given too: what the run makes once the fit has data.  (Accepting every draft
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


CURVE_POINTS = 4  # parts of the sample in the learning curve


def _filled(alpha):
    """Acceptance by position with positions never reached given the last one reached (0 if none)."""
    observed = [a for a in alpha if not math.isnan(a)]
    return [a if not math.isnan(a) else (observed[-1] if observed else 0.0) for a in alpha]


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
        s = sim.statistics
        curve, half = [], None
        for k in range(CURVE_POINTS):  # the sample in equal parts: the learning curve of a correction that learns
            before = (s.steps, s.expectedAcceptance)
            sim.step(steps * (k + 1) // CURVE_POINTS - steps * k // CURVE_POINTS)
            if s.steps > before[0]:
                curve.append({"step": s.steps, "expected_acceptance": (s.expectedAcceptance - before[1])
                              / (s.steps - before[0])})
            if k == CURVE_POINTS // 2 - 1:
                half = (list(s.expectedByPosition), list(s.attemptsByPosition))
        wall = time.perf_counter() - start
        alpha = _filled(s.expectedAcceptanceByPosition)
        targetSeconds = (sim.verifier.targetSeconds - targetSeconds) / max(sim.verifier.numEvaluations - evaluations, 1)
        draftSeconds = s.draftSeconds / max(s.draftSteps, 1)
        E = stepsPerRound(alpha)
        window = sim.window
        late = {}
        if hasattr(sim.correction, "fitReport") and half is not None:
            # A correction fitted during the run gets better along it: the prediction from the sample's second
            # half, what a run long enough to have learned makes per round.
            lateAlpha = _filled([(e - e0) / (n - n0) if n > n0 else float("nan") for e, e0, n, n0 in
                                 zip(s.expectedByPosition, half[0], s.attemptsByPosition, half[1])])
            lateE = stepsPerRound(lateAlpha)
            late = {"predicted_acceptance_by_position_second_half": lateAlpha,
                    "predicted_steps_per_round_second_half": lateE,
                    "predicted_speedup_second_half": {str(K): speedupBound(lateE, window, K, targetSeconds, draftSeconds)
                                                      for K in verifiers}}
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
            "predicted_acceptance_curve": curve,
            **late,
            "wall_seconds": wall,
        }
    finally:
        sim.close()
