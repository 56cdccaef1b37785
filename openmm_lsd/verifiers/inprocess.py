"""A verifier that evaluates the target on one Context in this process."""

import time

from .base import Evaluation, Verifier, evaluate


class InProcessVerifier(Verifier):
    """Evaluate target forces on one Context, lazily and in the order asked for.

    Nothing runs at :meth:`submit`; :meth:`result` evaluates the positions
    submitted under that key.  Positions cancelled before they are asked for
    are never evaluated, so a serial run wastes no target calls on discarded
    drafts.

    Parameters
    ----------
    context : openmm.Context
        A Context on the target System.  Its positions are overwritten; the
        owner restores the state it wants afterwards.
    """

    #: one evaluation at a time, on demand: speculation saves nothing here (window='auto' picks 1)
    concurrency = 1
    supportsVolumeMoves = True

    def __init__(self, context):
        self.context = context
        self._pending = {}
        self.numEvaluations = 0
        self.targetSeconds = 0.0

    def submit(self, key, positions, box=None, energy=False, urgent=False):
        self._pending[key] = (positions, box, energy)

    def result(self, key):
        positions, box, energy = self._pending.pop(key)
        start = time.perf_counter()
        try:
            forces, potential = evaluate(self.context, positions, box, energy)
        except Exception as exc:
            raise RuntimeError(f"the target failed to evaluate forces at step {key[1]}: "
                               f"{type(exc).__name__}: {exc}") from exc
        self.targetSeconds += time.perf_counter() - start
        self.numEvaluations += 1
        return Evaluation(forces, None, potential)

    def cancel(self, predicate):
        for key in [k for k in self._pending if predicate(k)]:
            del self._pending[key]
