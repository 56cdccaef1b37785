"""The speculative loop: draft, verify, accept or reflect, restart.

One object holds the explicit state of a run (DESIGN.md sections 3-5, 9):

* the accepted target state (x_t, v^t_t) at global step t, mirrored in a
  force-free *replay* Context that carries the target's constraints, virtual
  sites and CMMotionRemover, so that the target step is finished by OpenMM's
  own constraint algorithms;
* the draft Context, at step ``draftStep >= t``, with one record per drafted
  step j > t (its noise xi_j, acceptance uniform U_j, x_pre^d and x_j^d);
* the verifier, which holds drafted positions under keys ``(epoch, index)``;
  the epoch changes at each restart, so results for discarded drafts are
  recognised and dropped;
* the draft correction's inputs: dF_s = F_t(x_s) - F_d(x_s) at accepted s.

Each global step j is decided exactly once with its own xi_j and U_j, drawn
from a generator keyed by (seed, j).  The draft is resynchronised only at
rejections (and when the user sets a new state), so the trajectory is a
function of the seed alone, whatever the window, the verifiers or their timing.
"""

import logging
import math
import time

import numpy as np
import openmm
from openmm import unit

from .coupling import acceptanceProbability, couple
from .integrators import XPRE_SET, setCoefficients
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


_UNSET = object()
TUNE_EVERY = 200  # verified steps between window choices with window='auto'
AUTO_START = 8  # the window='auto' run's first window  # forces the next draft step to set its correction


class _Draft:
    """What the controller keeps of one drafted step j.

    ``failed``: the draft cannot go on from x_j^d (its step threw, or x_j^d or x_pre^d is not
    finite); the step is still coupled when x_pre^d (hence mu_d) is finite (:meth:`_fallsBack`).
    """

    __slots__ = ("xi", "logU", "rng", "xpre", "positions", "fd", "failed")


class SpeculativeController:
    """The speculative loop over a draft Context, a replay Context and a verifier.

    Parameters
    ----------
    coeffs : integrators._Coefficients
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
        self.coeffs = coeffs
        self.draftContext = draftContext
        self.draftIntegrator = draftContext.getIntegrator()
        self.replayContext = replayContext
        self.replayIntegrator = replayContext.getIntegrator()
        self._mean = self.replayIntegrator.getIntegrator(0)
        self._finish = self.replayIntegrator.getIntegrator(1)
        self.verifier = verifier
        # Periodic boxes go to every target evaluation where the verifier takes one (in-process, MPI).
        self._verifierTakesBox = bool(getattr(verifier, "supportsVolumeMoves", False))
        self._platformProperties = dict(platformProperties or {})
        self._draftForceContext = None
        self._verifierDraftForces = bool(getattr(verifier, "providesDraftForces", False))
        # With no more evaluators than the window, positions of the next round wait for the current
        # round's positions: submitted early they would occupy ranks that a rejection's restart needs
        # (scheduling only; the trajectory does not depend on it).
        slots = getattr(verifier, "concurrency", None)
        self._roundLocked = slots is not None and slots <= (min(window, AUTO_START) if autoWindow else window)
        self.window = window
        self.correction = correction
        self.seed = seed
        system = replayContext.getSystem()
        self.numParticles = system.getNumParticles()
        self._masses = np.array([system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(self.numParticles)])
        self.massive = self._masses > 0
        self._setNoiseScale(coeffs)
        self._vdIndex = self._perDofIndex(self.draftIntegrator, "vd")
        self._fdIndex = self._perDofIndex(self.draftIntegrator, "fd")
        self._correctionSet = None
        self.draftIntegrator.setPerDofVariableByName("corr", np.zeros((self.numParticles, 3)))
        #: choose the window during the run (:meth:`_tuneWindow`); ``window`` is then its upper limit
        self.autoWindow = bool(autoWindow)
        self.maxWindow = window
        if self.autoWindow:
            self.window = min(window, AUTO_START)
        self.statistics = Statistics(self.window, window)
        self._nextTune = TUNE_EVERY
        # Corrections that refit the draft take differences against the original draft, kept as a copy.
        self._originalDraftForces = bool(getattr(correction, "needsOriginalDraftForces", False))
        self._differenceSystem = draftContext.getSystem()
        if self._originalDraftForces:
            self._differenceSystem = openmm.XmlSerializer.clone(draftContext.getSystem())
        self.acceptedPositions = {}
        if hasattr(correction, "bind"):
            correction.bind(self, self._differenceSystem)
        self._evaluationsBefore = 0  # target evaluations of the run before a checkpoint was loaded
        self.barostat = barostat
        if barostat is not None and not getattr(verifier, "supportsVolumeMoves", False):
            raise ValueError(f"a barostat needs a verifier that evaluates energies in a given box (in-process or "
                             f"MPI); {type(verifier).__name__} cannot")
        self.box = None  # (3, 3) nm, tracked when a barostat changes it
        self._energies = {}
        self._moveStep = None  # the last step whose volume move was decided
        self.epoch = 0
        self.step = None

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

    # ---- state -------------------------------------------------------------------------

    def reset(self, positions, velocities, step, box=None):
        """Start a new accepted history at ``step`` from the given state (nm, nm/ps arrays; box (3, 3) nm)."""
        self.step = int(step)
        self.origin = self.step
        self.positions = np.array(positions, dtype=np.float64)
        self.velocities = np.array(velocities, dtype=np.float64)
        if box is not None:  # periodic: the box is geometry, for the draft, the replay and every target evaluation
            self.box = np.array(box, dtype=np.float64)
            self.replayContext.setPeriodicBoxVectors(*self.box)
        self._moveStep = None
        self.differences = {}
        self.acceptedPositions = {self.step: self.positions}
        if hasattr(self.correction, "reset"):
            self.correction.reset()  # its caches belong to the old history
        self.replayContext.setPositions(self.positions)
        self.replayContext.setVelocities(self.velocities)
        self._restart()

    def _restart(self, evaluation=None):
        """Discard every drafted step past the frontier and restart the draft from (x_t, v^t_t).

        ``evaluation`` = (F_t, F_d or None, E_t) at x_t where already known (after a volume
        move); otherwise x_t is submitted to the verifier.
        """
        self.epoch += 1
        epoch = self.epoch
        self.verifier.cancel(lambda key: key[0] != epoch)
        self.forces = {}
        self._energies = {}
        self._draftForces = {}  # index -> F_d at the submitted x_index, where the verifier returns it
        self.records = {}
        self.draftFailed = False
        self.draftStep = self.step
        self.restartStep = self.step
        self.roundStart = self.step
        if self.box is not None:
            self.draftContext.setPeriodicBoxVectors(*self.box)
        self.draftContext.setPositions(self.positions)
        # The draft integrator keeps its velocity in ``vd`` (its Context's velocities carry x_pre).
        self.draftIntegrator.setPerDofVariableByName("vd", self.velocities)
        self.draftContext.setStepCount(self.step)
        self.submitted = self.step
        if evaluation is None:
            self._submit(self.step, self.positions)
        else:
            self._store(self.step, *evaluation)

    def _submit(self, index, positions):
        """Queue the target evaluation of x_index (with the box and, before a volume move, the energy)."""
        box = self.box if self._verifierTakesBox else None
        energy = self.barostat is not None and self.barostat.due(index)
        if box is None and not energy:
            self.verifier.submit((self.epoch, index), positions)
        else:
            self.verifier.submit((self.epoch, index), positions, box=box, energy=energy)

    def _store(self, index, forces, draftForces, energy):
        if draftForces is not None:
            self._draftForces[index] = draftForces
        if energy is not None:
            self._energies[index] = energy
        if not np.all(np.isfinite(forces)):
            bad = np.argsort(-np.nan_to_num(np.abs(forces).max(axis=1), nan=np.inf))[:5]
            raise RuntimeError(
                f"target force is not finite at step {index} (atoms {bad.tolist()}); the run stops at the "
                f"last accepted step {self.step}"
            )
        self.forces[index] = forces

    # ---- phases --------------------------------------------------------------------------

    def _targetForce(self, index):
        """F_t at the accepted position x_index (waits for the verifier)."""
        if index not in self.forces:
            self._store(index, *asEvaluation(self.verifier.result((self.epoch, index))))
        return self.forces[index]

    def _source(self, j):
        return self.correction.source(j, self.origin, self.restartStep)

    def _ready(self, j):
        """Whether drafting step j may start now (its correction's inputs are accepted history)."""
        if self.draftFailed:
            return False
        s = self._source(j)
        return s is None or s < self.step

    def _correctionFor(self, j):
        # A difference that was never formed (the draft step threw, or gave non-finite forces) means no
        # correction (or a lower order): still a function of the accepted history, so still exact.
        return self.correction.combine(j, self.origin, self.restartStep, self.differences)

    def draft(self):
        """Draft one step past ``draftStep`` and submit its position for verification."""
        start = time.perf_counter()
        j = self.draftStep + 1
        record = _Draft()
        record.xi, record.logU, record.rng = stepNoise(self.seed, j, self.numParticles)
        if hasattr(self.correction, "prepare"):
            self.correction.prepare(j, self.draftContext)
        corr = self._correctionFor(j)
        if corr is not self._correctionSet:
            self.draftIntegrator.setPerDofVariableByName(
                "corr", np.zeros((self.numParticles, 3)) if corr is None else corr)
            self._correctionSet = corr
        self.draftIntegrator.setPerDofVariableByName("xi", record.xi)
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
                record.xpre = np.asarray(self.draftIntegrator.getPerDofVariableByName("xpre"), dtype=np.float64)
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
        self.records[j] = record
        self.draftStep = j
        self.statistics.draftSteps += 1
        if record.failed:
            self.draftFailed = True
        self.statistics.draftSeconds += time.perf_counter() - start

    def _submitMore(self):
        last = min(self.draftStep, self.step + self.window - 1)
        if self._roundLocked:
            last = min(last, self.roundStart + self.window - 1)
        while self.submitted < last and not self.records[self.submitted + 1].failed:
            self.submitted += 1
            self._submit(self.submitted, self.records[self.submitted].positions)

    def verify(self):
        """Decide step t + 1 as DESIGN.md section 4 lists it: the target mean, the coupling (or the serial
        fallback), the correction's input, the target's own finish of the step, the commit."""
        j = self.step + 1
        record = self.records[j]
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
            self.statistics._endRound()
            self._restart()

    def _targetMean(self, j, forces):
        """mu_t of step j from the target state (x_{j-1}, v^t_{j-1}) and F_t(x_{j-1}): phase A of the replay
        (CMMotionRemover at step count j - 1, then v1), mu_t = x + meanFactor v1 (DESIGN.md sections 2, 6)."""
        self.replayContext.setStepCount(j - 1)
        self._mean.setPerDofVariableByName("ft", forces)
        self.replayIntegrator.setCurrentIntegrator(0)
        self.replayIntegrator.step(1)
        v1 = stateArray(self.replayContext.getState(getVelocities=True), "velocities")
        return self.positions + self._meanFactor * v1

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
        fd = record.fd if record.fd is not None else self._draftForces.pop(j - 1, None)
        if fd is None and self._originalDraftForces:
            # F_d of the original draft at the position submitted for j - 1 (what MPI ranks return).
            previous = self.records.get(j - 1)
            fd = self._draftForcesAt(previous.positions if previous is not None and j - 1 != self.restartStep
                                     else self.positions)
        if fd is not None:
            difference = forces - fd
            if np.all(np.isfinite(difference)):
                self.differences[j - 1] = difference

    def _finishTargetStep(self, j, xpre):
        """(x_j, v^t_j): phase B of the replay, the target's own constraint step from x_{j-1} (DESIGN.md 2, 4)."""
        self._finish.setPerDofVariableByName("xpre", xpre)
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
            self.replayContext.setPositions(self.positions)
            self.replayContext.setVelocities(self.velocities)
            raise RuntimeError(f"target step {j} failed ({reason}); the run stops at the last accepted step {self.step}")
        return positions, velocities

    def _commit(self, j, positions, velocities, accepted, fallback, probability):
        """Step j joins the accepted history."""
        self.step = j
        self.positions = positions
        self.velocities = velocities
        if self._originalDraftForces:
            self.acceptedPositions[j] = positions
        self.statistics._record(accepted, fallback, probability)
        if j >= self.roundStart + self.window:
            self.roundStart = j
        self._prune()

    def _fallsBack(self, record):
        """Whether step j is the serial target step x_pre = mu_t + sigma xi_j instead of a coupling.

        Only when mu_d itself is not finite: a draft that fails after drawing a finite x_pre^d
        (NaN after its constraints) depends on xi_j, so reusing xi_j there would bias the law;
        such a step is coupled as usual and the draft restarts after it.
        """
        return record.xpre is None or not np.all(np.isfinite(record.xpre))

    def _prune(self):
        t = self.step
        self.records.pop(t - 1, None)  # x_t itself may still await submission (window 1)
        self.forces.pop(t - 1, None)
        self._energies.pop(t - 1, None)
        self._draftForces.pop(t - 1, None)
        # Pending and future drafts need s >= t - lag - 1, or the last restart's r - 1, and for an
        # extrapolation the `order` indices before each.
        order = getattr(self.correction, "order", 0)
        keep = t - (self.correction.lag or 0) - 1 - order
        if hasattr(self.correction, "retention"):
            keep -= self.correction.retention()
            for s in [s for s in self.acceptedPositions if s < keep]:
                del self.acceptedPositions[s]
        restart = self.restartStep - 1
        for s in [s for s in self.differences if s < keep and not restart - order <= s <= restart]:
            del self.differences[s]

    # ---- checkpoints ---------------------------------------------------------------------------

    def checkpointState(self):
        """Everything that decides the future, as (JSON-able dict, dict of named float64 arrays).

        Besides the accepted state and the correction's inputs, the draft's own state is kept
        as it is now (its positions and velocity at ``draftStep``, which may be ahead of the
        accepted step) with the records of the steps drafted past the accepted one: resuming
        continues that draft exactly, never resynchronising it (DESIGN.md section 8).
        """
        state = self.draftContext.getState(getPositions=True)
        arrays = {"positions": self.positions, "velocities": self.velocities,
                  "draftPositions": stateArray(state, "positions"),
                  "draftVelocity": np.asarray(self.draftIntegrator.getPerDofVariable(self._vdIndex))}
        for s, difference in self.differences.items():
            arrays[f"difference/{s}"] = difference
        if self._originalDraftForces:
            for s, x in self.acceptedPositions.items():
                arrays[f"accepted/{s}"] = x
        pending = []
        for j in range(self.step + 1, self.draftStep + 1):
            record = self.records[j]
            fd = record.fd
            if fd is None and self.correction.lag is not None and record.positions is not None:
                # MPI ranks return F_d(x_{j-1}) with F_t; a resumed run may verify in-process, so the checkpoint
                # holds it (the running records are left as they are).
                previous = self.records.get(j - 1)
                fd = self._draftForcesAt(previous.positions if previous is not None else self.positions)
            pending.append({"step": j, "failed": bool(record.failed), "fd": fd is not None,
                            "xpre": record.xpre is not None})
            if record.positions is not None:
                arrays[f"record/{j}/positions"] = record.positions
            if record.xpre is not None:
                arrays[f"record/{j}/xpre"] = record.xpre
            if fd is not None:
                arrays[f"record/{j}/fd"] = fd
        if self.box is not None:
            arrays["box"] = self.box
        meta = {"step": self.step, "origin": self.origin, "restartStep": self.restartStep,
                "roundStart": self.roundStart, "draftStep": self.draftStep, "draftFailed": self.draftFailed,
                "pending": pending, "seed": self.seed, "statistics": self.statistics.counters(),
                "correction": self.correction.name, "lag": self.correction.lag,
                "barostat": None if self.barostat is None else self.barostat.state(), "moveStep": self._moveStep}
        return meta, arrays

    def _draftForcesAt(self, positions, box=None):
        """F_d at ``positions`` (in ``box``, default the current one) from a force-only Context on the draft
        System (made on first use, on the run's platform with its properties)."""
        if self._draftForceContext is None:
            self._draftForceContext = createContext(self._differenceSystem, openmm.VerletIntegrator(0.001),
                                                    self.draftContext.getPlatform(), self._platformProperties)
        return evaluate(self._draftForceContext, positions, self.box if box is None else box)[0]

    def restoreState(self, meta, arrays):
        """Continue exactly from :meth:`checkpointState`'s output."""
        self.step = int(meta["step"])
        self.origin = int(meta["origin"])
        self.seed = int(meta["seed"])
        self.positions = np.array(arrays["positions"])
        self.velocities = np.array(arrays["velocities"])
        self.differences = {int(name.split("/")[1]): np.array(a) for name, a in arrays.items()
                            if name.startswith("difference/")}
        self.statistics = Statistics.fromCounters(meta["statistics"], self.window, self.maxWindow)
        self.acceptedPositions = {int(name.split("/")[1]): np.array(a) for name, a in arrays.items()
                                  if name.startswith("accepted/")}
        if hasattr(self.correction, "reset"):
            self.correction.reset()
        if self.barostat is not None:
            if meta.get("barostat") is None or "box" not in arrays:
                raise ValueError("the checkpoint was written without a barostat; this simulation has one")
            self.barostat.restore(meta["barostat"])
        if "box" in arrays:
            self.box = np.array(arrays["box"])
            self.replayContext.setPeriodicBoxVectors(*self.box)
        self._moveStep = meta.get("moveStep")
        self._evaluationsBefore = self.statistics.targetEvaluations - self.verifier.numEvaluations
        self.replayContext.setPositions(self.positions)
        self.replayContext.setVelocities(self.velocities)
        self._restart()  # a fresh epoch and submission of x_t; the draft state is then overwritten:
        self.restartStep = int(meta["restartStep"])
        self.roundStart = int(meta["roundStart"])
        self.draftStep = int(meta["draftStep"])
        self.draftFailed = bool(meta["draftFailed"])
        self.draftContext.setPositions(arrays["draftPositions"])
        self.draftIntegrator.setPerDofVariableByName("vd", arrays["draftVelocity"])
        self.draftContext.setStepCount(self.draftStep)
        self._correctionSet = _UNSET
        self.records = {}
        for item in meta["pending"]:
            j = int(item["step"])
            record = _Draft()
            record.xi, record.logU, record.rng = stepNoise(self.seed, j, self.numParticles)
            record.failed = bool(item["failed"])
            record.positions = arrays.get(f"record/{j}/positions")
            record.xpre = arrays.get(f"record/{j}/xpre") if item.get("xpre", record.positions is not None) else None
            record.fd = arrays.get(f"record/{j}/fd") if item["fd"] else None
            self.records[j] = record

    # ---- the barostat ------------------------------------------------------------------------

    def _proposeMove(self):
        """Submit the trial state of the volume move between step t and t + 1 (barostat module)."""
        proposal = self.barostat.propose(self.seed, self.step, self.positions, self.box)
        self.verifier.submit((self.epoch, self.step, "volume"), proposal.positions, box=proposal.box, energy=True,
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
        energy = self._energies.get(t)
        forces, draftForces, newEnergy = asEvaluation(self.verifier.result((self.epoch, t, "volume")))
        if energy is None or newEnergy is None:
            raise RuntimeError(f"the verifier returned no energy for the volume move at step {t}")
        energy, newEnergy = self._moveEnergies(proposal, energy, newEnergy)
        if not (math.isfinite(energy) and math.isfinite(newEnergy) and np.all(np.isfinite(forces))):
            raise RuntimeError(f"the target energy or forces are not finite in the trial box of the volume move at "
                               f"step {t}; the run stops at the last accepted step {self.step}")
        accepted = self.barostat.decide(proposal, energy, newEnergy)
        self._moveStep = t  # decided (a fault before this point leaves the move to be made on resuming)
        self.statistics.volumeMoves += 1
        if accepted:
            self.statistics.volumeMovesAccepted += 1
            self.statistics._endRound()  # the draft restarts: the next step is a round's first
            self.positions = proposal.positions
            self.box = proposal.box
            self.replayContext.setPeriodicBoxVectors(*self.box)
            self.replayContext.setPositions(self.positions)
            if self._originalDraftForces:
                self.acceptedPositions[t] = self.positions
            self._restart((forces, draftForces, newEnergy))
        self.statistics.barostatSeconds += time.perf_counter() - start
        return accepted

    def _moveEnergies(self, proposal, energy, newEnergy):
        """The target energies (kJ/mol) at x_t and at the trial state that decide a volume move."""
        return energy, newEnergy

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
        self._roundLocked = getattr(self.verifier, "concurrency", None) is not None and slots <= window

    def _proposeVolumeMove(self):
        """The trial state of the barostat's move before step t + 1, submitted, where one is due (else None)."""
        if self.barostat is None or self._moveStep == self.step or not self.barostat.due(self.step):
            return None
        return self._proposeMove()

    def _draftAhead(self, end):
        """Draft and submit as far as the window, the correction's lag and ``end`` allow.  With a volume move
        pending, the draft goes on as if it were rejected (the steps stand if it is)."""
        limit = min(self.step + self.window, end)
        while self.draftStep < limit and self._ready(self.draftStep + 1):
            self.draft()
            self._submitMore()
        self._submitMore()

    def advance(self, steps):
        """Verify ``steps`` more steps (and make the barostat's volume moves between them): each turn tunes
        the window, proposes a volume move, drafts ahead, decides the move, verifies the next step."""
        end = self.step + steps
        while self.step < end:
            self._tuneWindow()
            proposal = self._proposeVolumeMove()
            self._draftAhead(end)
            if proposal is not None and self._decideMove(proposal):
                continue  # accepted: the draft restarted from the scaled state
            self.verify()
        self.statistics.targetEvaluations = self._evaluationsBefore + self.verifier.numEvaluations
