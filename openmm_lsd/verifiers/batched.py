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
    batchForces : callable or model
        ``batchForces(positions)`` with ``positions`` a float64 array of shape
        (B, N, 3) in nm, returning forces of the same shape in kJ/mol/nm; or a model
        with a method ``batchEnergiesAndForces(positions, boxes=None)`` returning
        (energies (B,) in kJ/mol, forces (B, N, 3)), such as
        :class:`openmm_lsd.models.SevenNetPotential`: then the verifier also serves
        periodic Systems (each configuration in its own box, (B, 3, 3) nm), energies
        for reporters and a barostat's volume moves.  Either must compute the same
        forces as the target System used for reporting.
    maxBatch : int, optional
        Largest batch passed to the model.

    Examples
    --------
    >>> from openmm_lsd.models import SevenNetPotential
    >>> potential = SevenNetPotential("sevennet-0")
    >>> target = createTarget(topology, potential)      # the same model as the target System (it learns the atoms)
    >>> verifier = BatchedVerifier(potential)
    """

    def __init__(self, batchForces, maxBatch=None):
        both = getattr(batchForces, "batchEnergiesAndForces", None)
        if both is None and not callable(batchForces):
            raise TypeError("batchForces must be callable or have a batchEnergiesAndForces method")
        if maxBatch is not None and (not isinstance(maxBatch, int) or maxBatch < 1):
            raise ValueError(f"maxBatch must be a positive integer, got {maxBatch!r}")
        self.batchForces = batchForces
        self._both = both
        self.supportsVolumeMoves = both is not None
        self.maxBatch = maxBatch
        self._pending = {}
        self._results = {}
        self._parameters = None
        self.numEvaluations = 0
        self.numCalls = 0
        self.targetSeconds = 0.0

    def setParameters(self, parameters):
        """The model cannot see the target Context's parameters: refuse a change of them."""
        if self._parameters is None:
            self._parameters = dict(parameters)
        elif dict(parameters) != self._parameters:
            changed = sorted(k for k in set(parameters) | set(self._parameters)
                             if parameters.get(k) != self._parameters.get(k))
            raise ValueError(f"the target Context's parameters {changed} changed during the run, but a batched "
                             "verifier's model does not see them; make them part of the model instead")

    def submit(self, key, positions, box=None, energy=False, urgent=False):
        if (box is not None or energy) and self._both is None:
            raise ValueError("a batched verifier given only batchForces evaluates forces without a box or "
                             "energies: give it a model with batchEnergiesAndForces(positions, boxes) instead")
        self._pending[key] = (positions, box)
        if urgent:  # evaluated first (and alone if maxBatch is 1): the controller waits for it
            self._pending = {key: self._pending.pop(key), **self._pending}

    def _call(self, batch, boxes):
        start = time.perf_counter()
        try:
            if self._both is None:
                return None, np.asarray(self.batchForces(batch), dtype=np.float64)
            if boxes is None:
                energies, forces = self._both(batch)
            else:
                energies, forces = self._both(batch, boxes)
            return np.asarray(energies, dtype=np.float64), np.asarray(forces, dtype=np.float64)
        finally:
            self.targetSeconds += time.perf_counter() - start

    def result(self, key):
        if key not in self._results:
            keys = [key] + [k for k in self._pending if k != key]
            if self.maxBatch is not None:
                keys = keys[: self.maxBatch]
            jobs = [self._pending.pop(k) for k in keys]
            batch = np.stack([x for x, _ in jobs])
            periodic = [b is not None for _, b in jobs]
            if any(periodic) and not all(periodic):
                raise ValueError("a batch mixes positions with and without a periodic box")
            energies, forces = self._call(batch, np.stack([b for _, b in jobs]) if all(periodic) else None)
            if forces.shape != batch.shape:
                raise ValueError(f"the model returned forces of shape {forces.shape} for positions of shape "
                                 f"{batch.shape}")
            self.numCalls += 1
            self.numEvaluations += len(keys)
            for i, k in enumerate(keys):
                self._results[k] = Evaluation(forces[i], None, None if energies is None else float(energies[i]))
        return self._results.pop(key)

    def cancel(self, predicate):
        for store in (self._pending, self._results):
            for key in [k for k in store if predicate(k)]:
                del store[key]
