"""The speculative loop: draft, verify, accept or reflect, restart.

The controller is a sampler in openmmtools' ``multistate`` shape: every piece of state is
declared in ``__init__``, in three state objects (:mod:`openmm_lsd.history`) --

* the verified frontier: the accepted target state (x_t, v^t_t) at global step t, mirrored in
  a force-free *replay* Context that carries the target's constraints, virtual sites and
  CMMotionRemover, so that the target step is finished by OpenMM's own constraint algorithms;
* the drafted-ahead steps: the draft Context at step ``draftStep >= t`` with one record per
  drafted step j > t (its noise xi_j, acceptance uniform U_j, x_pre^d and x_j^d), and the
  target evaluations that came back; the verifier holds drafted positions under keys
  ``(epoch, index)``, the epoch changing at each restart, so results for discarded drafts are
  recognised and dropped;
* the correction's inputs: dF_s = F_t(x_s) - F_d(x_s) at accepted s --

and ``advance()`` is a list of phase calls (tune the window, propose a volume move, draft ahead,
decide the move, verify the next step), each phase a method that a subclass may override (the
negative controls of :mod:`openmm_lsd.testing` do exactly that).  One class per job: drafting,
verification (DESIGN.md section 4's steps), volume moves, checkpoints, and the loop that owns them.

Each global step j is decided exactly once with its own xi_j and U_j, drawn from a generator
keyed by (seed, j).  The draft is resynchronised only at rejections (and when the user sets a new
state), so the trajectory is a function of the seed alone, whatever the window, the verifiers or
their timing.
"""

import logging
import math
import time

import numpy as np
import openmm
from openmm import unit

from .coupling import acceptanceProbability, couple
from .history import CorrectionInputs, Draft, DraftedAhead, Frontier
from .integrators import XPRE_SET, setCoefficients, var
from .statistics import Statistics, bestWindow
from .verifiers.base import asEvaluation, createContext, evaluate, stateArray

logger = logging.getLogger(__name__)


def stepNoise(seed, step, numParticles):
    """The draft noise xi_step ~ N(0, I) (shape (N, 3)) and log U_step of one global step.

    Drawn from numpy's PCG64 seeded with the SeedSequence of (seed, step), so a
    step's randomness does not depend on how many steps were drafted before it
    (DESIGN.md section 9).  U lies in (0, 1], so log U is finite.
    """
    rng = np.random.default_rng([seed, step])
    xi = rng.standard_normal((numParticles, 3))
    logU = math.log(1.0 - rng.random())
    return xi, logU, rng


_UNSET = object()  # forces the next draft step to set its correction
TUNE_EVERY = 200  # verified steps between window choices with window='auto'
AUTO_START = 8  # the window='auto' run's first window


class _Drafting:
    """Drafting steps past the frontier and submitting their positions (DESIGN.md sections 3, 9)."""

    def _source(self, j):
        return self.correction.source(j, self.frontier.origin, self.frontier.restartStep)

    def _ready(self, j):
        """Whether drafting step j may start now (its correction's inputs are accepted history)."""
        if self.ahead.failed:
            return False
        s = self._source(j)
        return s is None or s < self.frontier.step

    def _correctionFor(self, j):
        # A difference that was never formed (the draft step threw, or gave non-finite forces) means no
        # correction (or a lower order): still a function of the accepted history, so still exact.
        if getattr(self.correction, "usesStartPosition", False):
            # a correction that is a function of the position x_{j-1}^d that drafting step j starts from (where
            # the draft Context is now), as a force of the draft is: still exact (DESIGN.md sections 3, 11)
            start = stateArray(self.draftContext.getState(getPositions=True), "positions")
            return self.correction.combine(j, self.frontier.origin, self.frontier.restartStep, self.inputs.differences,
                                           start=start)
        return self.correction.combine(j, self.frontier.origin, self.frontier.restartStep, self.inputs.differences)

    def _setCorrection(self, j):
        if hasattr(self.correction, "prepare"):
            self.correction.prepare(j, self.draftContext)
        corr = self._correctionFor(j)
        if corr is not self._correctionSet:
            self.draftIntegrator.setPerDofVariableByName(
                var("corr"), np.zeros((self.numParticles, 3)) if corr is None else corr)
            self._correctionSet = corr

    def draft(self):
        """Draft one step past ``draftStep`` (its record joins the drafted-ahead steps)."""
        start = time.perf_counter()
        j = self.ahead.draftStep + 1
        record = Draft()
        record.xi, record.logU, record.rng = stepNoise(self.seed, j, self.numParticles)
        self._setCorrection(j)
        self.draftIntegrator.setPerDofVariableByName(var("xi"), record.xi)
        record.failed = threw = False
        record.positions = None
        stepStart = time.perf_counter()
        try:
            self.draftIntegrator.step(1)
            self.statistics.draftIntegratorSeconds += time.perf_counter() - stepStart
        except openmm.OpenMMException as exc:
            logger.debug("draft step %d failed: %s", j, exc)
            record.failed = threw = True
            record.xpre = None
            if self.draftIntegrator.getGlobalVariableByName(XPRE_SET) == 1:  # it failed after x_pre^d was drawn
                record.xpre = np.asarray(self.draftIntegrator.getPerDofVariableByName(var("xpre")), dtype=np.float64)
        if not record.failed:
            state = self.draftContext.getState(getPositions=True, getVelocities=True)
            record.positions = stateArray(state, "positions")
            record.xpre = stateArray(state, "velocities")  # see integrators.draftIntegrator
            record.failed = not (np.all(np.isfinite(record.positions)) and np.all(np.isfinite(record.xpre)))
        record.fd = None
        if (self.correction.lag is not None and not threw and not self._verifierDraftForces
                and not self._originalDraftForces):
            # F_d(x_{j-1}), the draft half of dF_{j-1}, which a later step's correction may use.
            record.fd = np.asarray(self.draftIntegrator.getPerDofVariable(self._fdIndex))
        self.ahead.records[j] = record
        self.ahead.draftStep = j
        self.statistics.draftSteps += 1
        if record.failed:
            self.ahead.failed = True
        self.statistics.draftSeconds += time.perf_counter() - start

    def _submit(self, index, positions):
        """Queue the target evaluation of x_index (with the box and, before a volume move, the energy)."""
        box = self.frontier.box if self._verifierTakesBox else None
        energy = (self.barostat is not None and self.barostat.due(index)) or index in self.energySteps
        if box is None and not energy:
            self.verifier.submit((self.epoch, index), positions)
        else:
            self.verifier.submit((self.epoch, index), positions, box=box, energy=energy)

    def _submitMore(self):
        ahead = self.ahead
        last = min(ahead.draftStep, self.frontier.step + self.window - 1)
        if self._roundLocked and not self._batchLocked:
            last = min(last, self.frontier.roundStart + self.window - 1)
        if self._batchLocked:
            # Fewer evaluators than the window: the positions go out in batches of ``slots`` counted from the
            # restart, the next batch once every step the current one verifies is decided.  Streamed to each
            # rank as it frees, a later position would hold that rank for a whole target call whenever a
            # rejection in the earlier, still undecided positions discards it, and the restart's own
            # positions would queue behind it (measured on Cu13, 16 ranks, window 32: 1.87 target
            # latencies per round against 1.43 for the rounds' lengths; docs/benchmarks.md).  Scheduling
            # only: the trajectory does not depend on it.  The batches bound what is out on their own: the
            # round lock on top would cut a batch short wherever the window is not a multiple of K.
            a, slots = self.frontier.restartStep, self._slots
            last = min(last, a + slots * ((self.frontier.step - a) // slots + 1) - 1)
        # x_t, which the next verification needs, is never held back: a window that 'auto' shrank leaves the
        # round lock on a round that began under the longer window, and with batches of one nothing past x_t
        # went out before the shrink.
        last = max(last, min(ahead.draftStep, self.frontier.step))
        while ahead.submitted < last and not ahead.records[ahead.submitted + 1].failed:
            ahead.submitted += 1
            self._submit(ahead.submitted, ahead.records[ahead.submitted].positions)

    def _draftAhead(self, end):
        """Draft and submit as far as the window, the correction's lag and ``end`` allow.  With a volume move
        pending, the draft goes on as if it were rejected (the steps stand if it is)."""
        limit = min(self.frontier.step + self.window, end)
        while self.ahead.draftStep < limit and self._ready(self.ahead.draftStep + 1):
            self.draft()
            self._submitMore()
        self._submitMore()


class _Verification:
    """Deciding step t + 1 (DESIGN.md section 4): target mean, coupling, correction input, finish, commit."""

    def _store(self, index, forces, draftForces, energy):
        if draftForces is not None:
            self.ahead.draftForces[index] = draftForces
        if energy is not None:
            self.ahead.energies[index] = energy
        if not np.all(np.isfinite(forces)):
            bad = np.argsort(-np.nan_to_num(np.abs(forces).max(axis=1), nan=np.inf))[:5]
            raise RuntimeError(
                f"target force is not finite at step {index} (atoms {bad.tolist()}); the run stops at the "
                f"last accepted step {self.frontier.step}"
            )
        self.ahead.forces[index] = forces

    def _targetForce(self, index):
        """F_t at the accepted position x_index (waits for the verifier)."""
        if index not in self.ahead.forces:
            self._store(index, *asEvaluation(self.verifier.result((self.epoch, index))))
        return self.ahead.forces[index]

    def verify(self):
        """Decide step t + 1 as DESIGN.md section 4 lists it: the target mean, the coupling (or the serial
        fallback), the correction's input, the target's own finish of the step, the commit."""
        j = self.frontier.step + 1
        record = self.ahead.records[j]
        forces = self._targetForce(j - 1)
        start = time.perf_counter()
        muTarget = self._targetMean(j, forces)
        fallback = self._fallsBack(record)
        if fallback:
            accepted, probability, xpre = False, 0.0, muTarget + self.sigma * record.xi
        else:
            accepted, probability, xpre = self._couple(record, muTarget)
        self._recordDifference(j, forces, record)
        positions, velocities = self._finishTargetStep(j, xpre)
        self._commit(j, positions, velocities, accepted, fallback, probability)
        self.statistics.verifySeconds += time.perf_counter() - start
        if fallback and self.statistics.fallbacks in (10, 100, 1000):
            logger.warning("the draft has failed %d times (NaN or constraint failure); each failure costs a "
                           "serial target step", self.statistics.fallbacks)
        if not accepted:
            self._restart()
        elif record.failed:
            # Accepted, but the draft cannot go on from x_j^d: it restarts from the target state.
            self.statistics.endRound()
            self._restart()

    def _targetMean(self, j, forces):
        """mu_t of step j from the target state (x_{j-1}, v^t_{j-1}) and F_t(x_{j-1}): phase A of the replay
        (CMMotionRemover at step count j - 1, then v1), mu_t = x + meanFactor v1 (DESIGN.md sections 2, 6)."""
        self.replayContext.setStepCount(j - 1)
        self._mean.setPerDofVariableByName(var("ft"), forces)
        self.replayIntegrator.setCurrentIntegrator(0)
        self.replayIntegrator.step(1)
        v1 = stateArray(self.replayContext.getState(getVelocities=True), "velocities")
        return self.frontier.positions + self._meanFactor * v1

    def _fallsBack(self, record):
        """Whether step j is the serial target step x_pre = mu_t + sigma xi_j instead of a coupling.

        Only when mu_d itself is not finite: a draft that fails after drawing a finite x_pre^d
        (NaN after its constraints) depends on xi_j, so reusing xi_j there would bias the law;
        such a step is coupled as usual and the draft restarts after it.
        """
        return record.xpre is None or not np.all(np.isfinite(record.xpre))

    def _couple(self, record, muTarget):
        """The reflection-maximal coupling of N(mu_d, sigma^2) and N(mu_t, sigma^2) (DESIGN.md section 4).

        Returns (accepted, 2 Phi(-|m|/2), x_pre^t); only the massive degrees of freedom are coupled.
        """
        massive = self.massive
        sig = self._couplingSigma()
        muDraft = record.xpre[massive] - self._sigmaMassive * record.xi[massive]
        m = ((muTarget[massive] - muDraft) / sig).ravel()
        u = ((record.xpre[massive] - muDraft) / sig).ravel()
        probability = acceptanceProbability(m)
        accepted, w = self._accept(u, m, record.logU)
        if accepted:
            return True, probability, record.xpre
        xpre = np.array(muTarget)
        xpre[massive] = self._rejected(record, muTarget[massive], muDraft, sig, w)
        return False, probability, xpre

    def _couplingSigma(self):
        """sigma of the massive degrees of freedom, (M, 1)."""
        return self._sigmaMassive

    def _accept(self, u, m, logU):
        """log U < u.m - |m|^2/2, and the reflected noise w (:func:`openmm_lsd.coupling.couple`)."""
        return couple(u, m, logU)

    def _rejected(self, record, muTarget, muDraft, sig, w):
        """x_pre^t of a rejected step: mu_t + sigma (u - 2 (e.u) e), e = m/|m|."""
        return muTarget + sig * w.reshape(-1, 3)

    def _recordDifference(self, j, forces, record):
        """dF_{j-1} = F_t(x_{j-1}) - F_d(x_{j-1}), the corrections' input (accepted history only)."""
        fd = record.fd if record.fd is not None else self.ahead.draftForces.pop(j - 1, None)
        if fd is None and self._originalDraftForces:
            # F_d of the original draft at the position submitted for j - 1 (what MPI ranks return).
            previous = self.ahead.records.get(j - 1)
            fd = self._draftForcesAt(previous.positions if previous is not None and j - 1 != self.frontier.restartStep
                                     else self.frontier.positions)
        if fd is not None:
            difference = forces - fd
            if np.all(np.isfinite(difference)):
                self.inputs.differences[j - 1] = difference

    def _finishTargetStep(self, j, xpre):
        """(x_j, v^t_j): phase B of the replay, the target's own constraint step from x_{j-1} (DESIGN.md 2, 4)."""
        self._finish.setPerDofVariableByName(var("xpre"), xpre)
        self.replayIntegrator.setCurrentIntegrator(1)
        try:
            self.replayIntegrator.step(1)
            state = self.replayContext.getState(getPositions=True, getVelocities=True)
            positions = stateArray(state, "positions")
            velocities = stateArray(state, "velocities")
            ok = np.all(np.isfinite(positions)) and np.all(np.isfinite(velocities))
        except openmm.OpenMMException as exc:
            ok, reason = False, str(exc)
        else:
            reason = "non-finite positions or velocities"
        if not ok:
            self.replayContext.setPositions(self.frontier.positions)
            self.replayContext.setVelocities(self.frontier.velocities)
            raise RuntimeError(f"target step {j} failed ({reason}); the run stops at the last accepted step "
                               f"{self.frontier.step}")
        return positions, velocities

    def _commit(self, j, positions, velocities, accepted, fallback, probability):
        """Step j joins the accepted history; what its verification used up is pruned."""
        frontier = self.frontier
        frontier.step, frontier.positions, frontier.velocities = j, positions, velocities
        if self._originalDraftForces:
            self.inputs.acceptedPositions[j] = positions
        self.statistics.record(accepted, fallback, probability)
        if j >= frontier.roundStart + self.window:
            frontier.roundStart = j
        self.ahead.prune(j)
        self.inputs.prune(j, self.correction, frontier.restartStep)


class _VolumeMoveSteps:
    """The target's Monte Carlo barostat, its moves made between verified steps (:mod:`openmm_lsd.barostat`)."""

    def _proposeVolumeMove(self):
        """The trial state of the barostat's move before step t + 1, submitted, where one is due (else None)."""
        t = self.frontier.step
        if self.barostat is None or self.frontier.moveStep == t or not self.barostat.due(t):
            return None
        proposal = self.barostat.propose(self.seed, t, self.frontier.positions, self.frontier.box)
        self.verifier.submit((self.epoch, t, "volume"), proposal.positions, box=proposal.box, energy=True,
                             urgent=True)
        return proposal

    def _decideMove(self, proposal):
        """Accept or reject ``proposal`` on the target energies at x_t and at the trial state.

        Returns whether it was accepted; then (x'_t, v_t, box') is the accepted state at
        step t, and the draft restarts there (the trial's forces serve step t + 1).
        """
        t = proposal.step
        self._targetForce(t)  # the verification of x_t, needed anyway: not the barostat's cost
        start = time.perf_counter()
        energy = self.ahead.energies.get(t)
        forces, draftForces, newEnergy = asEvaluation(self.verifier.result((self.epoch, t, "volume")))
        if energy is None or newEnergy is None:
            raise RuntimeError(f"the verifier returned no energy for the volume move at step {t}")
        energy, newEnergy = self._moveEnergies(proposal, energy, newEnergy)
        if not (math.isfinite(energy) and math.isfinite(newEnergy) and np.all(np.isfinite(forces))):
            raise RuntimeError(f"the target energy or forces are not finite in the trial box of the volume move at "
                               f"step {t}; the run stops at the last accepted step {self.frontier.step}")
        accepted = self.barostat.decide(proposal, energy, newEnergy)
        self.frontier.moveStep = t  # decided (a fault before this point leaves the move to be made on resuming)
        self.statistics.volumeMoves += 1
        if accepted:
            self.statistics.volumeMovesAccepted += 1
            self.statistics.endRound()  # the draft restarts: the next step is a round's first
            self.frontier.positions = proposal.positions
            self.frontier.box = proposal.box
            self.replayContext.setPeriodicBoxVectors(*self.frontier.box)
            self.replayContext.setPositions(self.frontier.positions)
            if self._originalDraftForces:
                self.inputs.acceptedPositions[t] = self.frontier.positions
            self._restart((forces, draftForces, newEnergy))
        self.statistics.barostatSeconds += time.perf_counter() - start
        return accepted

    def _moveEnergies(self, proposal, energy, newEnergy):
        """The target energies (kJ/mol) at x_t and at the trial state that decide a volume move."""
        return energy, newEnergy


class _Checkpointing:
    """Everything that decides the future as the state objects' fields and arrays (DESIGN.md section 8)."""

    def checkpointState(self):
        """Everything that decides the future, as (JSON-able dict, dict of named float64 arrays).

        Besides the accepted state and the correction's inputs, the draft's own state is kept
        as it is now (its positions and velocity at ``draftStep``, which may be ahead of the
        accepted step) with the records of the steps drafted past the accepted one: resuming
        continues that draft exactly, never resynchronising it (DESIGN.md section 8).
        """
        frontier = self.frontier
        meta, arrays = frontier.checkpoint()
        # MPI ranks return F_d(x_{j-1}) with F_t; a resumed run may verify in-process, so the checkpoint holds it.
        aheadMeta, aheadArrays = self.ahead.checkpoint(
            frontier.step, lambda x: self._draftForcesAt(frontier.positions if x is None else x),
            self.correction.lag is not None)
        state = self.draftContext.getState(getPositions=True)
        arrays.update(aheadArrays, draftPositions=stateArray(state, "positions"),
                      draftVelocity=np.asarray(self.draftIntegrator.getPerDofVariable(self._vdIndex)),
                      **self.inputs.checkpoint(self._originalDraftForces))
        meta.update(aheadMeta, seed=self.seed, statistics=self.statistics.counters(), correction=self.correction.name,
                    lag=self.correction.lag, barostat=None if self.barostat is None else self.barostat.state())
        if hasattr(self.correction, "checkpointState"):  # a correction with state of its own (a fit)
            meta["correctionState"], correctionArrays = self.correction.checkpointState()
            arrays.update(correctionArrays)
        return meta, arrays

    def restoreState(self, meta, arrays):
        """Continue exactly from :meth:`checkpointState`'s output."""
        if self.barostat is not None:
            if meta.get("barostat") is None or "box" not in arrays:
                raise ValueError("the checkpoint was written without a barostat; this simulation has one")
            self.barostat.restore(meta["barostat"])
        self.seed = int(meta["seed"])
        self.frontier.restore(meta, arrays)
        self.inputs.restore(arrays)
        self.statistics = Statistics.fromCounters(meta["statistics"], self.window, self.maxWindow)
        if hasattr(self.correction, "reset"):
            self.correction.reset()
        if hasattr(self.correction, "restoreState"):
            self.correction.restoreState(meta["correctionState"], arrays)
        frontier = self.frontier
        if frontier.box is not None:
            self.replayContext.setPeriodicBoxVectors(*frontier.box)
        self._evaluationsBefore = self.statistics.targetEvaluations - self.verifier.numEvaluations
        self.replayContext.setPositions(frontier.positions)
        self.replayContext.setVelocities(frontier.velocities)
        restartStep, roundStart = frontier.restartStep, frontier.roundStart
        self._restart()  # a fresh epoch and submission of x_t; the draft state is then overwritten:
        frontier.restartStep, frontier.roundStart = restartStep, roundStart
        self.ahead.restore(meta, arrays, lambda j: stepNoise(self.seed, j, self.numParticles))
        self.draftContext.setPositions(arrays["draftPositions"])
        self.draftIntegrator.setPerDofVariableByName(var("vd"), arrays["draftVelocity"])
        self.draftContext.setStepCount(self.ahead.draftStep)
        self._correctionSet = _UNSET


class SpeculativeController(_Drafting, _Verification, _VolumeMoveSteps, _Checkpointing):
    """The speculative loop over a draft Context, a replay Context and a verifier.

    Parameters
    ----------
    coeffs : integrators.Coefficients
        Scheme, temperature, friction and step size.
    draftContext : openmm.Context
        Context on the draft System with ``integrators.draftIntegrator(coeffs)``.
    replayContext : openmm.Context
        Context on the replay System with ``integrators.replayIntegrator(coeffs)``.
    verifier : verifiers.Verifier
        Evaluates target forces.
    window : int
        Maximum number of drafted steps ahead of the verified frontier.
    correction : object
        A draft correction from :mod:`openmm_lsd.corrections`.
    seed : int
        Keys the per-step noise.
    autoWindow : bool
        Choose the window during the run (:meth:`_tuneWindow`), up to ``window``.
    barostat : barostat.VolumeMoves, optional
        The target's Monte Carlo barostat, whose volume moves the controller makes
        between verified steps; the verifier must support them.
    platformProperties : dict, optional
        The run's platform properties, for the force-only draft Context (:meth:`_draftForcesAt`).
    """

    def __init__(self, coeffs, draftContext, replayContext, verifier, window, correction, seed, autoWindow=False,
                 barostat=None, platformProperties=None):
        if barostat is not None and not getattr(verifier, "supportsVolumeMoves", False):
            raise ValueError(f"a barostat needs a verifier that evaluates energies in a given box (in-process or "
                             f"MPI); {type(verifier).__name__} cannot")
        # The Contexts and what the loop reads of them.
        self.coeffs = coeffs
        self.draftContext, self.draftIntegrator = draftContext, draftContext.getIntegrator()
        self.replayContext, self.replayIntegrator = replayContext, replayContext.getIntegrator()
        self._mean, self._finish = self.replayIntegrator.getIntegrator(0), self.replayIntegrator.getIntegrator(1)
        self._vdIndex = self._perDofIndex(self.draftIntegrator, var("vd"))
        self._fdIndex = self._perDofIndex(self.draftIntegrator, var("fd"))
        system = replayContext.getSystem()
        self.numParticles = system.getNumParticles()
        self._masses = np.array([system.getParticleMass(i).value_in_unit(unit.dalton)
                                 for i in range(self.numParticles)])
        self.massive = self._masses > 0
        self.sigma = self._sigmaMassive = self._meanFactor = None
        self._setNoiseScale(coeffs)
        # The verifier: boxes go to every target evaluation where it takes one (in-process, MPI).
        self.verifier = verifier
        self._verifierTakesBox = bool(getattr(verifier, "supportsVolumeMoves", False))
        self._verifierDraftForces = bool(getattr(verifier, "providesDraftForces", False))
        self.energySteps = set()  # the steps whose target energy reporters want from the verifier (requestEnergy)
        self._draftEnd = 0  # how far the draft may run (advance's horizon)
        self._evaluationsBefore = 0  # target evaluations of the run before a checkpoint was loaded
        self.epoch = 0
        # The window: with window='auto', chosen during the run (:meth:`_tuneWindow`), ``window`` its upper limit.
        self.autoWindow = bool(autoWindow)
        self.maxWindow = window
        self.window = min(window, AUTO_START) if self.autoWindow else window
        self._nextTune = TUNE_EVERY
        # With no more evaluators than the window, positions of the next round wait for the current
        # round's positions, and with fewer, those of the next batch for the current batch's: submitted
        # early they would occupy ranks that a rejection's restart needs (:meth:`_submitMore`;
        # scheduling only, the trajectory does not depend on it).
        self._setLocks(getattr(verifier, "concurrency", None))
        self.statistics = Statistics(self.window, window)
        # The correction; those that refit the draft take differences against a copy of the original draft.
        self.correction = correction
        self.seed = seed
        self._correctionSet = None
        self.draftIntegrator.setPerDofVariableByName(var("corr"), np.zeros((self.numParticles, 3)))
        self._originalDraftForces = bool(getattr(correction, "needsOriginalDraftForces", False))
        self._differenceSystem = draftContext.getSystem()
        if self._originalDraftForces:
            self._differenceSystem = openmm.XmlSerializer.clone(draftContext.getSystem())
            if hasattr(correction, "originalDraft"):  # a correction that added forces to the draft takes them out
                self._differenceSystem = correction.originalDraft(self._differenceSystem)
        self._platformProperties = dict(platformProperties or {})
        self._draftForceContext = None  # made on first use (:meth:`_draftForcesAt`)
        self.barostat = barostat
        # The state (openmm_lsd.history).
        self.frontier = Frontier()
        self.ahead = DraftedAhead()
        self.inputs = CorrectionInputs()
        if hasattr(correction, "bind"):
            correction.bind(self, self._differenceSystem)

    # The accepted state, as the facade and the tests read it.
    step = property(lambda self: self.frontier.step)
    positions = property(lambda self: self.frontier.positions)
    velocities = property(lambda self: self.frontier.velocities)
    box = property(lambda self: self.frontier.box)

    def _setNoiseScale(self, coeffs):
        sigma = np.zeros(self.numParticles)
        sigma[self.massive] = coeffs.sigmaFactor() * np.sqrt(coeffs.kT / self._masses[self.massive])
        self.sigma = sigma[:, None]
        self._sigmaMassive = sigma[self.massive][:, None]
        # mu = x + meanFactor * v, with v the Context's velocity after phase A.
        self._meanFactor = coeffs.meanFactor()

    def setCoefficients(self, coeffs, constraintTolerance):
        """Run on with another temperature, friction, step size or constraint tolerance (the integrator's setters).

        The draft and replay integrators and the coupling's sigma take the new values; the caller
        restarts the accepted history (:meth:`reset`), so no step drafted with the old ones is used.
        """
        self.coeffs = coeffs
        self._setNoiseScale(coeffs)
        phases = [self.replayIntegrator.getIntegrator(k) for k in range(self.replayIntegrator.getNumIntegrators())]
        for integrator in [self.draftIntegrator] + phases:
            setCoefficients(integrator, coeffs)
            integrator.setConstraintTolerance(constraintTolerance)
        if self._draftForceContext is not None:
            self._draftForceContext.getIntegrator().setConstraintTolerance(constraintTolerance)

    @staticmethod
    def _perDofIndex(integrator, name):
        for i in range(integrator.getNumPerDofVariables()):
            if integrator.getPerDofVariableName(i) == name:
                return i
        raise KeyError(name)

    def _draftForcesAt(self, positions, box=None):
        """F_d at ``positions`` (in ``box``, default the current one) from a force-only Context on the draft
        System (made on first use, on the run's platform with its properties)."""
        if self._draftForceContext is None:
            self._draftForceContext = createContext(self._differenceSystem, openmm.VerletIntegrator(0.001),
                                                    self.draftContext.getPlatform(), self._platformProperties)
        return evaluate(self._draftForceContext, positions, self.frontier.box if box is None else box)[0]

    # ---- the accepted history ------------------------------------------------------------------

    def reset(self, positions, velocities, step, box=None):
        """Start a new accepted history at ``step`` from the given state (nm, nm/ps arrays; box (3, 3) nm)."""
        frontier = self.frontier
        frontier.step = frontier.origin = int(step)
        frontier.positions = np.array(positions, dtype=np.float64)
        frontier.velocities = np.array(velocities, dtype=np.float64)
        if box is not None:  # periodic: the box is geometry, for the draft, the replay and every target evaluation
            frontier.box = np.array(box, dtype=np.float64)
            self.replayContext.setPeriodicBoxVectors(*frontier.box)
        frontier.moveStep = None
        self.inputs.start(frontier.step, frontier.positions)
        if hasattr(self.correction, "reset"):
            self.correction.reset()  # its caches belong to the old history
        self.replayContext.setPositions(frontier.positions)
        self.replayContext.setVelocities(frontier.velocities)
        self._restart()

    def _restart(self, evaluation=None):
        """Discard every drafted step past the frontier and restart the draft from (x_t, v^t_t).

        ``evaluation`` = (F_t, F_d or None, E_t) at x_t where already known (after a volume
        move); otherwise x_t is submitted to the verifier.
        """
        self.epoch += 1
        epoch = self.epoch
        self.verifier.cancel(lambda key: key[0] != epoch)
        frontier = self.frontier
        self.ahead.clear(frontier.step)
        frontier.restartStep = frontier.roundStart = frontier.step
        if frontier.box is not None:
            self.draftContext.setPeriodicBoxVectors(*frontier.box)
        self.draftContext.setPositions(frontier.positions)
        # The draft integrator keeps its velocity in ``vd`` (its Context's velocities carry x_pre).
        self.draftIntegrator.setPerDofVariableByName(var("vd"), frontier.velocities)
        self.draftContext.setStepCount(frontier.step)
        if evaluation is None:
            self._submit(frontier.step, frontier.positions)
        else:
            self._store(frontier.step, *evaluation)

    # ---- the loop ------------------------------------------------------------------------------

    def _setLocks(self, slots):
        """How positions are held back for a verifier with ``slots`` evaluators (None: unlimited) and this window
        (:meth:`_submitMore`).  A lazy in-process verifier (one slot) evaluates only what it is asked for, so
        batches of one cost it nothing (x_t goes out when the next step or a report needs it); one MPI rank no
        longer evaluates a position before the step that decides whether it is needed."""
        self._slots = slots
        self._roundLocked = slots is not None and slots <= self.window
        self._batchLocked = slots is not None and slots < self.window

    def _tuneWindow(self):
        """With ``window='auto'``, every TUNE_EVERY verified steps: the window of :func:`statistics.bestWindow`
        for the measured acceptance and costs (K the verifier's concurrency: 1 in-process, where speculation
        saves nothing; unlimited for a batched verifier).  Only speed depends on it, never the trajectory."""
        s = self.statistics
        if not self.autoWindow or s.steps < self._nextTune:
            return
        self._nextTune = s.steps + TUNE_EVERY
        slots = getattr(self.verifier, "concurrency", None) or self.maxWindow
        window = bestWindow(s, self.verifier.targetSeconds / max(self.verifier.numEvaluations, 1),
                            s.draftSeconds / max(s.draftSteps, 1), slots,
                            min(self.maxWindow, self.correction.lag or self.maxWindow))
        if window is None:
            return
        self.window = window
        s.window = window
        self._setLocks(getattr(self.verifier, "concurrency", None))

    def advance(self, steps, horizon=None):
        """Verify ``steps`` more steps (and make the barostat's volume moves between them): each turn tunes
        the window, proposes a volume move, drafts ahead, decides the move, verifies the next step.

        The draft runs up to ``horizon`` steps past the frontier (default ``steps``): a caller that stops at
        a report and goes on keeps the verifiers busy across the stop.  The trajectory does not depend on
        it (each drafted step is a function of its index and of the accepted history, DESIGN.md section 9).
        """
        end = self.frontier.step + steps
        self._draftEnd = draftEnd = self.frontier.step + max(steps, horizon or 0)
        while self.frontier.step < end:
            self._tuneWindow()
            proposal = self._proposeVolumeMove()
            self._draftAhead(draftEnd)
            if proposal is not None and self._decideMove(proposal):
                continue  # accepted: the draft restarted from the scaled state
            self.verify()
        self.statistics.targetEvaluations = self._evaluationsBefore + self.verifier.numEvaluations

    def requestEnergy(self, steps):
        """Have the target's potential energy at x_s computed with its forces for each s in ``steps`` (reporters
        are due there): the verifier evaluates x_s anyway, for the step after it."""
        self.energySteps = set(steps) if self._verifierTakesBox else set()

    def frontierEnergy(self):
        """E_t(x_t) in kJ/mol at the frontier t from the verifier, or None where it was not asked for
        (:meth:`requestEnergy`) or x_t could not be submitted.  Drafts ahead and submits x_t where it is not yet
        out, then waits for its evaluation, which the next step needs anyway."""
        t = self.frontier.step
        if t in self.ahead.energies or t not in self.energySteps:
            return self.ahead.energies.get(t)
        # Draft and submit first, as the loop would: the verifiers stay busy while this waits, and x_t goes out
        # now where positions go in batches (the loop submits it only on its next turn).
        self._draftAhead(self._draftEnd)
        if self.ahead.submitted >= t:
            self._targetForce(t)
        return self.ahead.energies.get(t)
