"""Check LSD against the serial run on your own System: independent repetitions from one state, then
two-sample tests.  The exactness tests, ``openmm-lsd validate`` and the exactness-table scripts use these.

A law test compares R independent LSD samples with R independent serial samples::

    from openmm_lsd import validation
    lsd = validation.lsdRepetitions(sim, x0, v0, steps=10, repetitions=2000, seed0=1000)
    serial = validation.serialRepetitions(lambda r: context, x0, v0, steps=10, repetitions=2000)
    p = validation.bonferroniKS(lsd, serial)     # exact: p is uniform; reject at, say, p < 1e-3

Each LSD repetition starts a new accepted history at (x0, v0) with its own seed, as a state set by
the user does, so repetitions are independent and the whole is a deterministic function of
``seed0``; the serial repetitions continue one Context's random stream (or use one Context per
repetition, for a barostat whose counters must restart).  A negative control (a deliberately broken
variant, :mod:`openmm_lsd.testing`) must be rejected by the same test at the same R.
"""

import math

import numpy as np

__all__ = ["lsdRepetitions", "serialRepetitions", "finalState", "bonferroniKS", "compareSamples",
           "statisticalInefficiency"]


def finalState(context, chunk=None):
    """The default observation: positions and velocities, shape (2, N, 3) (nm, nm/ps)."""
    from .verifiers.base import stateArray

    state = context.getState(getPositions=True, getVelocities=True)
    return np.stack([stateArray(state, "positions"), stateArray(state, "velocities")])


def _chunks(steps):
    return [int(steps)] if np.isscalar(steps) else [int(s) for s in steps]


def _start(context, positions, velocities, step, box):
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(positions)
    context.setVelocities(velocities)
    context.setStepCount(step)


def _observe(context, observe, chunks, advance):
    parts = []
    for k, n in enumerate(chunks):
        advance(n)
        value = observe(context, k)
        if value is not None:
            parts.append(np.asarray(value, dtype=np.float64).ravel())
    return np.concatenate(parts)


def lsdRepetitions(simulation, positions, velocities, steps, repetitions, seed0=None, startStep=0, box=None,
                   observe=finalState, freshBarostat=False):
    """R independent LSD samples from one state.

    Parameters
    ----------
    simulation : SpeculativeSimulation
        Reused for every repetition (its Contexts are built once).
    positions, velocities : array (N, 3)
        The state every repetition starts from (nm, nm/ps), at step index ``startStep`` and in
        ``box`` ((3, 3) nm) where given; ``startStep`` may be a function of the repetition r.
    steps : int or sequence of int
        Steps per repetition; a sequence splits them into chunks, ``observe`` called after each.
    repetitions : int
        R.
    seed0 : int, optional
        Repetition r runs with seed ``seed0 + r``.  None keeps the simulation's seed: the noise, keyed
        by (seed, step), is then fresh only where each repetition starts at its own ``startStep(r)``
        far enough from the others (as ``openmm-lsd validate`` does).
    observe : callable
        ``observe(context, chunk)`` -> array (or None to record nothing after that chunk), from
        ``simulation.context`` holding the accepted state.
    freshBarostat : bool
        Restart the barostat's adaptive step and step count for each repetition, as a fresh
        Context does (:meth:`SpeculativeSimulation.resetBarostat`).

    Returns
    -------
    numpy.ndarray
        Shape (R, C): each repetition's observations, flattened and concatenated over chunks.
    """
    chunks = _chunks(steps)
    context = simulation.context
    out = []
    for r in range(repetitions):
        if seed0 is not None:
            simulation.seed = seed0 + r
        if freshBarostat:
            simulation.resetBarostat()
        _start(context, positions, velocities, startStep(r) if callable(startStep) else startStep, box)
        out.append(_observe(context, observe, chunks, simulation.step))
    return np.array(out)


def serialRepetitions(contextFor, positions, velocities, steps, repetitions, startStep=0, box=None,
                      observe=finalState):
    """R independent samples of the serial integrator from one state.

    ``contextFor(r)`` gives repetition r's Context (whose integrator is the serial one): the same
    Context each time continues one random stream; a fresh one per repetition restarts whatever its
    forces count (a barostat's schedule and adaptive step).  Other arguments and the result as
    :func:`lsdRepetitions`.
    """
    chunks = _chunks(steps)
    out = []
    for r in range(repetitions):
        context = contextFor(r)
        _start(context, positions, velocities, startStep(r) if callable(startStep) else startStep, box)
        out.append(_observe(context, observe, chunks, context.getIntegrator().step))
    return np.array(out)


def bonferroniKS(a, b):
    """Two-sample Kolmogorov-Smirnov tests on every column of ``a`` and ``b`` (shape (R, C) each),
    Bonferroni-combined: p = min(1, C min_c p_c).  Under the same law p is (conservatively) uniform,
    so an exact variant passes a threshold such as p > 1e-3 and a negative control must give p < 1e-6."""
    from scipy import stats

    a, b = np.asarray(a), np.asarray(b)
    ps = [stats.ks_2samp(a[:, i], b[:, i]).pvalue for i in range(a.shape[1])]
    return min(1.0, len(ps) * min(ps))


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
