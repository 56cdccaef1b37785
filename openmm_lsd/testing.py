"""Negative controls: deliberately broken variants of the engine, for the law tests only.

A statistical test of exactness must show that it rejects a broken variant (the
standards of this package); the variants live here, outside the engine, each as a
subclass that overrides one phase of :class:`~openmm_lsd.controller.SpeculativeController`
(or of :class:`~openmm_lsd.barostat.VolumeMoves`).  They are selected by name where a
test needs them from outside the process (``SpeculativeSimulation(..., _control=name)``,
``openmm-lsd validate --control``).  Never a user option: each gives a wrong law.
"""

import numpy as np
from openmm import unit

from ._units import BOLTZMANN
from .barostat import BAR, VolumeMoves
from .controller import SpeculativeController
from .corrections import LearnedCorrection
from .learned import normalEquations
from .verifiers.base import asEvaluation


class AcceptAlways(SpeculativeController):
    """Every draft proposal accepted: the draft's law."""

    def _accept(self, u, m, logU):
        return True, None


class DraftVelocity(SpeculativeController):
    """The draft velocity in place of the target velocity in mu_t (DESIGN.md section 4's warning)."""

    def _restart(self, evaluation=None):
        self._draftVelocities = {self.step: self.velocities}
        super()._restart(evaluation)

    def draft(self):
        super().draft()
        j = self.ahead.draftStep
        if not self.ahead.records[j].failed:
            self._draftVelocities[j] = np.asarray(self.draftIntegrator.getPerDofVariable(self._vdIndex))

    def _targetMean(self, j, forces):
        self.replayContext.setVelocities(self._draftVelocities[j - 1])
        return super()._targetMean(j, forces)

    def _commit(self, j, *args):
        super()._commit(j, *args)
        self._draftVelocities.pop(j - 1, None)


class ResampleAtDraftMean(SpeculativeController):
    """A rejection redrawn around the draft mean instead of reflected into the target's Gaussian."""

    def _rejected(self, record, muTarget, muDraft, sig, w):
        return muDraft + self._sigmaMassive * record.rng.standard_normal(muDraft.shape)


class WrongSigma(SpeculativeController):
    """The coupling computed with 1.5 sigma."""

    def _couplingSigma(self):
        return self._sigmaMassive * 1.5


class LeakDiscardedForces(SpeculativeController):
    """The correction rule broken (DESIGN.md sections 3, 9): after a rejection at step r, the draft's
    offset for steps r + 1, ... is F_t - F_d at the *discarded* drafted position x_{r+1}^d, which was
    drawn with the noise xi_{r+1} that the redrafted step r + 1 uses again."""

    def verify(self):
        j = self.step + 1
        ahead = self.ahead.records.get(j + 1)
        discarded = ahead.positions if ahead is not None and not ahead.failed else None
        super().verify()
        if discarded is not None and self.frontier.restartStep == j:  # rejected at j: the draft restarted there
            key = (self.epoch, "leak")
            self.verifier.submit(key, discarded)
            self._leak(j, discarded, asEvaluation(self.verifier.result(key)).forces - self._draftForcesAt(discarded))

    def _leak(self, j, discarded, difference):
        # The offset's source for drafting j + 1 is the restart's r - 1 = j - 1 (corrections.py).
        self.inputs.differences[j - 1] = difference


class LeakyLearnedCorrection(LearnedCorrection):
    """The learned correction with one more way in: :meth:`absorb` folds a frame into its fit."""

    def absorb(self, features, difference, weight):
        A, y = normalEquations(features, difference.ravel(), self.model.weights)
        self._A += weight * A
        self._y += weight * y
        self._frames += 1
        self._thetas.clear()  # refitted at once: the redrafted steps use it
        self._applied = None


class LeakIntoTheFit(LeakDiscardedForces):
    """The learned correction's rule broken (DESIGN.md sections 3, 9, 11): at every rejection at step r the
    fit is redone with the target-minus-draft force at the *discarded* drafted position x_{r+1}^d (drawn with
    the noise xi_{r+1} that the redrafted step r + 1 uses again), weighted 10^4 times an accepted frame.

    A leak through a fit is diluted: where the basis represents the force error, any frame gives the same
    fit, and the residual's extrapolation takes the model only through its change between two positions.
    It shows where the model alone (``residual=False``) meets an error it cannot represent, so that the
    fit dominated by the leaked frame carries that frame's error to the redrafted position as an offset
    would: the 'learned-leak' configuration of tests/test_exactness.py (docs/exactness.md)."""

    WEIGHT = 1e4

    def _leak(self, j, discarded, difference):
        if not isinstance(self.correction, LeakyLearnedCorrection):
            self.correction.__class__ = LeakyLearnedCorrection
        self.correction.absorb(self.correction.model.features(discarded, self.frontier.box), difference, self.WEIGHT)


class LeakyResponseCorrection(LearnedCorrection):
    """The learned correction whose local response also reads ``leaked`` (position, target-minus-draft force),
    weighted ``weight`` times an accepted frame."""

    leaked, weight = None, 1.0

    def _responseRows(self, s, anchor, frame, keep, root, theta):
        D, R = super()._responseRows(s, anchor, frame, keep, root, theta)
        if self.leaked is not None:
            x, difference = self.leaked
            residual = difference - self.model.forces(self.model.features(x, self._controller.frontier.box), theta)
            w = np.sqrt(self.weight)
            D.append(w * ((x - anchor[0]).ravel() * root)[keep])
            R.append(w * (residual - anchor[1]).ravel()[keep])
        return D, R


class LeakIntoTheResponse(LeakDiscardedForces):
    """The local response's rule broken (DESIGN.md sections 3, 11): from every rejection at step r on, the
    learned correction's local response also fits the target-minus-draft force at the *discarded* drafted
    position x_{r+1}^d (drawn with the noise xi_{r+1} that the redrafted step r + 1 uses again), weighted
    10^4 times an accepted frame."""

    WEIGHT = 1e4

    def _leak(self, j, discarded, difference):
        if not isinstance(self.correction, LeakyResponseCorrection):
            self.correction.__class__ = LeakyResponseCorrection
        self.correction.leaked, self.correction.weight = (np.asarray(discarded), difference), self.WEIGHT


class DraftFailsOnNoise(SpeculativeController):
    """Not a control but an exact variant that provokes a rare path: the draft "fails" (cannot go on)
    whenever xi_j[0, 0] > 1, after drawing a finite x_pre^d, as a draft whose constraints fail only for
    some noises does.  Exact: such a step is coupled, and the draft restarts after it."""

    def draft(self):
        super().draft()
        record = self.ahead.records[self.ahead.draftStep]
        if record.xi[0, 0] > 1.0:
            record.failed = True
            self.ahead.failed = True


class FallBackOnNoiseFailure(DraftFailsOnNoise):
    """The fallback rule broken: a failed draft step becomes x_pre = mu_t + sigma xi_j even though x_pre^d
    was finite, so xi_j is reused for exactly the noises that made the draft fail (a biased law)."""

    def _fallsBack(self, record):
        return record.failed


class BarostatDraftEnergy(SpeculativeController):
    """Volume moves decided on the draft's energies instead of the target's."""

    def _moveEnergies(self, proposal, energy, newEnergy):
        return self._draftEnergyAt(self.positions, self.box), self._draftEnergyAt(proposal.positions, proposal.box)

    def _draftEnergyAt(self, positions, box):
        self._draftForcesAt(positions, box)
        return self._draftForceContext.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


class WithoutLogTerm(VolumeMoves):
    """The barostat's N kT ln(V'/V) term left out of the work."""

    def work(self, proposal, energy, newEnergy):
        return newEnergy - energy + self.pressures[proposal.axis] * BAR * proposal.deltaVolume, BOLTZMANN * self.temperature


class NoAdaptation(VolumeMoves):
    """The volume step never adapts (the attempt counters restart at every move)."""

    def decide(self, proposal, energy, newEnergy):
        accepted = super().decide(proposal, energy, newEnergy)
        self.numAttempted = [0] * len(self.numAttempted)
        self.numAccepted = [0] * len(self.numAccepted)
        return accepted


class ScheduleByIndex(VolumeMoves):
    """Moves before steps whose absolute index is a multiple of the frequency (the rule before OpenMM's count of
    steps taken was followed): another schedule wherever a run starts at an index that is no multiple of it."""

    def startCounting(self, step, counter=0):
        super().startCounting(step, step)


#: name -> (controller class or None, barostat class or None)
CONTROLS = {
    "accept_always": (AcceptAlways, None),
    "draft_velocity": (DraftVelocity, None),
    "resample_at_draft_mean": (ResampleAtDraftMean, None),
    "wrong_sigma": (WrongSigma, None),
    "LeakDiscardedForces": (LeakDiscardedForces, None),
    "LeakIntoTheFit": (LeakIntoTheFit, None),
    "LeakIntoTheResponse": (LeakIntoTheResponse, None),
    "DraftFailsOnNoise": (DraftFailsOnNoise, None),
    "FallBackOnNoiseFailure": (FallBackOnNoiseFailure, None),
    "barostat_draft_energy": (BarostatDraftEnergy, None),
    "barostat_no_log": (None, WithoutLogTerm),
    "barostat_no_adaptation": (None, NoAdaptation),
    "barostat_schedule_by_index": (None, ScheduleByIndex),
}


def install(controller, name):
    """Turn ``controller`` (and its barostat) into the named variant; the state is kept, only phases differ."""
    if name not in CONTROLS:
        raise ValueError(f"unknown control {name!r}; known: {sorted(CONTROLS)}")
    controllerClass, barostatClass = CONTROLS[name]
    if controllerClass is not None:
        controller.__class__ = controllerClass
    if barostatClass is not None:
        if controller.barostat is None:
            raise ValueError(f"control {name!r} needs a barostat in the target System")
        controller.barostat.__class__ = barostatClass
    return controller
