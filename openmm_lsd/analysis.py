"""Predicting acceptance and speedup, and comparing LSD with the serial run.

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

:func:`compareSamples` is the statistical test of ``openmm-lsd validate``: two
correlated time series (LSD and serial) are each thinned by their statistical
inefficiency (integrated autocorrelation time) and compared with a two-sample
Kolmogorov-Smirnov test and a Welch test of the means.
"""

import math
import time

import numpy as np


def stepsPerRound(alphaByPosition):
    """E = sum_{j<k} prod_{i<j} alpha_i for per-position acceptance rates (window k = their number)."""
    total, survive = 0.0, 1.0
    for alpha in alphaByPosition:
        total += survive
        survive *= alpha
    return total


def speedupBound(expectedSteps, window, verifiers, targetSeconds, draftSeconds):
    """DESIGN.md section 7: E T_t / (T_t ceil(k/K) + k T_d), zero controller overhead."""
    return expectedSteps * targetSeconds / (targetSeconds * math.ceil(window / verifiers) + window * draftSeconds)


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


def statisticalInefficiency(x, maxLag=None):
    """g = 1 + 2 sum_t (1 - t/n) C(t), summed until the autocorrelation C first drops below zero."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n < 4:
        return 1.0
    dx = x - x.mean()
    var = dx.var()
    if var == 0:
        return 1.0
    g = 1.0
    for t in range(1, maxLag or n // 2):
        c = np.dot(dx[:-t], dx[t:]) / ((n - t) * var)
        if c <= 0:
            break
        g += 2.0 * c * (1 - t / n)
    return max(g, 1.0)


def compareSamples(a, b, independent=False):
    """Test whether two correlated series (or, with ``independent``, two i.i.d. samples) have the same law.

    Each series is thinned to every ceil(g)-th sample (g its statistical
    inefficiency; g = 1 for independent samples); then a two-sample KS test and a
    Welch test of the means.
    Returns a dict with the effective sizes, means with standard errors and both
    p-values; ``p`` is the smaller p-value times 2 (Bonferroni over the two tests).
    """
    from scipy import stats

    out = {}
    thinned = []
    for name, x in (("lsd", a), ("serial", b)):
        x = np.asarray(x, dtype=float)
        g = 1.0 if independent else statisticalInefficiency(x)
        y = x[::max(1, int(math.ceil(g)))]
        thinned.append(y)
        out[name] = {"samples": len(x), "inefficiency": g, "independent": len(y), "mean": float(np.mean(x)),
                     "stderr": float(np.std(x, ddof=1) * math.sqrt(g / len(x))) if len(x) > 1 else float("nan")}
    ks = stats.ks_2samp(*thinned)
    se = math.hypot(out["lsd"]["stderr"], out["serial"]["stderr"])
    z = (out["lsd"]["mean"] - out["serial"]["mean"]) / se if se > 0 else 0.0
    pMean = 2 * stats.norm.sf(abs(z))
    out.update({"ks_p": float(ks.pvalue), "mean_z": float(z), "mean_p": float(pMean),
                "p": float(min(1.0, 2 * min(ks.pvalue, pMean)))})
    return out
