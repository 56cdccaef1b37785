"""Reflection-maximal coupling of two Gaussians with a shared diagonal covariance.

DESIGN.md section 4.  For step j the draft proposes x_pre^d ~ N(mu_d, diag sigma^2);
the target wants x_pre^t ~ N(mu_t, diag sigma^2).  With whitened quantities

    u = (x_pre^d - mu_d) / sigma          (the draft's own noise)
    m = (mu_t - mu_d) / sigma

the draft sample is accepted iff ``log U < u.m - |m|^2/2`` (U ~ Uniform(0, 1));
otherwise the target sample is the reflection of u through the hyperplane
orthogonal to e = m/|m|, placed around the target mean:

    x_pre^t = mu_t + sigma * (u - 2 (e.u) e)

This is the maximal coupling (Bou-Rabee, Eberle & Zimmer 2020; Jacob, O'Leary &
Atchade 2020): P(accept) = 2 Phi(-|m|/2) = 1 - TV.  Only degrees of freedom with
mass > 0 enter; the caller passes them already selected (massless particles and
virtual sites have sigma = 0 and are not integrated).
"""

import math

import numpy as np

__all__ = ["acceptanceProbability", "couple"]


def acceptanceProbability(m):
    """Exact acceptance probability of the coupling, ``2 Phi(-|m|/2) = erfc(|m| / (2 sqrt 2))``.

    Parameters
    ----------
    m : array_like
        The whitened mean difference (mu_t - mu_d)/sigma over the DOFs with mass > 0.

    Returns
    -------
    float
    """
    norm = float(np.linalg.norm(np.asarray(m, dtype=float)))
    return math.erfc(norm / (2.0 * math.sqrt(2.0)))


def couple(u, m, logU):
    """Decide one step of the reflection-maximal coupling.

    Parameters
    ----------
    u : numpy.ndarray
        Whitened draft noise, (x_pre^d - mu_d)/sigma, flattened over DOFs with mass > 0.
    m : numpy.ndarray
        Whitened mean difference, (mu_t - mu_d)/sigma, same shape as ``u``.
    logU : float
        log of the step's acceptance uniform, U in (0, 1].

    Returns
    -------
    accepted : bool
    w : numpy.ndarray
        The whitened target noise: x_pre^t = mu_t + sigma * w.  On acceptance
        ``w = u - m`` (so that x_pre^t = x_pre^d); on rejection the reflection
        ``u - 2 (e.u) e``.

    Notes
    -----
    The test is evaluated in log space, so |m| of any size is safe: a huge |m|
    makes the right-hand side very negative (certain rejection), |m| -> 0 makes
    it -> 0 (certain acceptance, since log U <= 0).  When |m| == 0 exactly the
    proposal is accepted whatever U is, and no direction e is needed.
    """
    um = float(np.dot(u, m))
    mm = float(np.dot(m, m))
    if mm == 0.0 or logU < um - 0.5 * mm:
        return True, u - m
    e = m / math.sqrt(mm)
    return False, u - 2.0 * float(np.dot(e, u)) * e
