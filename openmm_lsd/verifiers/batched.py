"""A verifier that evaluates every pending position in one call of a batched model."""

import time

import numpy as np

from .base import Evaluation, Verifier


class BatchedVerifier(Verifier):
    """Evaluate all submitted positions at once with a function of a batch of configurations.

    Where a model evaluates B configurations in one call for about the cost of
    one (a GPU model, or any model whose cost is dominated by per-call
    overhead), this turns a window of drafted positions into one target call.
    Submissions are only queued; :meth:`result` evaluates everything queued
    (at most ``maxBatch``) in one call.

    Parameters
    ----------
    batchForces : callable
        ``batchForces(positions)`` with ``positions`` a float64 array of shape
        (B, N, 3) in nm, returning forces of the same shape in kJ/mol/nm.  It
        must compute the same forces as the target System used for reporting.
    maxBatch : int, optional
        Largest batch passed to ``batchForces``.

    Examples
    --------
    >>> from openmm_lsd.models import TorchPairPotential
    >>> model = TorchPairPotential(22)
    >>> verifier = BatchedVerifier(model.batchForces)
    """

    def __init__(self, batchForces, maxBatch=None):
        if not callable(batchForces):
            raise TypeError("batchForces must be callable")
        if maxBatch is not None and (not isinstance(maxBatch, int) or maxBatch < 1):
            raise ValueError(f"maxBatch must be a positive integer, got {maxBatch!r}")
        self.batchForces = batchForces
        self.maxBatch = maxBatch
        self._pending = {}
        self._results = {}
        self._parameters = None
        self.numEvaluations = 0
        self.numCalls = 0
        self.targetSeconds = 0.0

    def setParameters(self, parameters):
        """``batchForces`` cannot see the target Context's parameters: refuse a change of them."""
        if self._parameters is None:
            self._parameters = dict(parameters)
        elif dict(parameters) != self._parameters:
            changed = sorted(k for k in set(parameters) | set(self._parameters)
                             if parameters.get(k) != self._parameters.get(k))
            raise ValueError(f"the target Context's parameters {changed} changed during the run, but a batched "
                             "verifier's batchForces does not see them; make them part of the model instead")

    def submit(self, key, positions, box=None, energy=False, urgent=False):
        if box is not None or energy:
            raise ValueError("a batched verifier evaluates forces only: it cannot serve a barostat's volume moves")
        self._pending[key] = positions

    def result(self, key):
        if key not in self._results:
            keys = [key] + [k for k in self._pending if k != key]
            if self.maxBatch is not None:
                keys = keys[: self.maxBatch]
            batch = np.stack([self._pending.pop(k) for k in keys])
            start = time.perf_counter()
            forces = np.asarray(self.batchForces(batch), dtype=np.float64)
            self.targetSeconds += time.perf_counter() - start
            if forces.shape != batch.shape:
                raise ValueError(f"batchForces returned shape {forces.shape} for positions of shape {batch.shape}")
            self.numCalls += 1
            self.numEvaluations += len(keys)
            for k, f in zip(keys, forces):
                self._results[k] = f
        return Evaluation(self._results.pop(key))

    def cancel(self, predicate):
        for store in (self._pending, self._results):
            for key in [k for k in store if predicate(k)]:
                del store[key]
