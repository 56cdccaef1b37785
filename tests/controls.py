"""Negative controls that live outside the engine: deliberately broken controllers, for the law tests.

Each is a subclass of :class:`openmm_lsd.controller.SpeculativeController` that overrides one
phase, installed on a built simulation with :func:`install`; the law tests must reject each
(tests/test_exactness.py).  Also the exact variants the tests need to provoke a path that real
drafts reach only rarely (a draft that fails whenever a noise component is large).
"""


from openmm_lsd.controller import SpeculativeController


class LeakDiscardedForces(SpeculativeController):
    """The correction rule broken (DESIGN.md sections 3, 9): after a rejection at step r, the draft's
    offset for steps r + 1, ... is F_t - F_d at the *discarded* drafted position x_{r+1}^d, which was
    drawn with the noise xi_{r+1} that the redrafted step r + 1 uses again."""

    def verify(self):
        j = self.step + 1
        ahead = self.records.get(j + 1)
        discarded = ahead.positions if ahead is not None and not ahead.failed else None
        super().verify()
        if discarded is not None and self.restartStep == j:  # rejected at j: the draft restarted there
            key = (self.epoch, "leak")
            self.verifier.submit(key, discarded)
            # The offset's source for drafting j + 1 is the restart's r - 1 = j - 1 (corrections.py).
            self.differences[j - 1] = self.verifier.result(key) - self._draftForcesAt(discarded)


class DraftFailsOnNoise(SpeculativeController):
    """An exact variant: the draft "fails" (cannot go on) whenever xi_j[0, 0] > 1, after drawing a finite
    x_pre^d, as a draft whose constraints fail only for some noises does.  Exact: such a step is coupled."""

    def draft(self):
        super().draft()
        record = self.records[self.draftStep]
        if record.xi[0, 0] > 1.0:
            record.failed = True
            self.draftFailed = True


class FallBackOnNoiseFailure(DraftFailsOnNoise):
    """The fallback rule broken: a failed draft step becomes x_pre = mu_t + sigma xi_j even though x_pre^d
    was finite, so xi_j is reused for exactly the noises that made the draft fail (a biased law)."""

    def _fallsBack(self, record):
        return record.failed


CONTROLLERS = {cls.__name__: cls for cls in (LeakDiscardedForces, DraftFailsOnNoise, FallBackOnNoiseFailure)}


def install(simulation, name):
    """Replace ``simulation``'s controller by the named variant (same state; only phases differ)."""
    controller = simulation._controller
    controller.__class__ = CONTROLLERS[name]
    return controller


__all__ = ["CONTROLLERS", "install"]
