"""The counters of a speculative run: acceptance by window position, rounds, costs (DESIGN.md section 7)."""

import math


class Statistics:
    """Counters of a speculative run.

    Parameters
    ----------
    window : int
        The window in force: a round ends after this many consecutive acceptances.
    capacity : int, optional
        Window positions counted by position (default ``window``; the largest window of a
        ``window='auto'`` run).

    Attributes
    ----------
    accepted, rejected, fallbacks : int
        Verified steps whose draft proposal was accepted, reflected, or replaced by
        a serial target step because the draft failed (NaN, constraint failure).
    rounds : int
        Completed rounds: a round ends at the first rejection or after ``window``
        consecutive acceptances (DESIGN.md section 7).
    draftSteps : int
        Draft steps taken, discarded ones included.
    targetEvaluations : int
        Target force evaluations, discarded ones included.
    expectedAcceptance : float
        Sum over verified steps of the exact acceptance probability 2 Phi(-|m|/2).
    volumeMoves, volumeMovesAccepted : int
        Barostat volume moves attempted and accepted (:mod:`openmm_lsd.barostat`).
    barostatSeconds : float
        Wall seconds the controller spent on volume moves: waiting for the trial
        state's target energy (a serial evaluation, or what is left of it when a
        verifier rank computed it while the draft ran on) and deciding.
    """

    def __init__(self, window, capacity=None):
        self.window = window
        capacity = max(window, capacity or window)
        self.accepted = 0
        self.rejected = 0
        self.fallbacks = 0
        self.rounds = 0
        self.draftSteps = 0
        self.targetEvaluations = 0
        self.expectedAcceptance = 0.0
        self.attemptsByPosition = [0] * capacity
        self.acceptsByPosition = [0] * capacity
        self.expectedByPosition = [0.0] * capacity
        self._roundPosition = 0
        self.draftSeconds = 0.0
        self.draftIntegratorSeconds = 0.0
        self.verifySeconds = 0.0
        self.volumeMoves = 0
        self.volumeMovesAccepted = 0
        self.barostatSeconds = 0.0

    @property
    def steps(self):
        """Verified steps."""
        return self.accepted + self.rejected + self.fallbacks

    @property
    def acceptanceRate(self):
        """Fraction of verified steps whose draft proposal was accepted."""
        return self.accepted / self.steps if self.steps else float("nan")

    @property
    def acceptanceByPosition(self):
        """Acceptance rate at window position 0, 1, ... (NaN where never attempted)."""
        return [a / n if n else float("nan") for a, n in zip(self.acceptsByPosition, self.attemptsByPosition)]

    @property
    def stepsPerRound(self):
        """Verified steps per round, counting an unfinished round as one."""
        rounds = self.rounds + (1 if self._roundPosition else 0)
        return self.steps / rounds if rounds else float("nan")

    @property
    def expectedAcceptanceByPosition(self):
        """Mean exact acceptance probability 2 Phi(-|m|/2) at window position 0, 1, ... (NaN where never attempted)."""
        return [e / n if n else float("nan") for e, n in zip(self.expectedByPosition, self.attemptsByPosition)]

    def record(self, accepted, fallback=False, probability=0.0):
        k = self._roundPosition
        self.attemptsByPosition[k] += 1
        self.expectedAcceptance += probability
        self.expectedByPosition[k] += probability
        if accepted:
            self.accepted += 1
            self.acceptsByPosition[k] += 1
            self._roundPosition += 1
            if self._roundPosition >= self.window:
                self.rounds += 1
                self._roundPosition = 0
        else:
            if fallback:
                self.fallbacks += 1
            else:
                self.rejected += 1
            self.rounds += 1
            self._roundPosition = 0

    def endRound(self):
        if self._roundPosition:
            self.rounds += 1
            self._roundPosition = 0

    def asDict(self):
        """The statistics as plain Python numbers (for JSON)."""
        return {
            "steps": self.steps,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "fallbacks": self.fallbacks,
            "rounds": self.rounds,
            "draftSteps": self.draftSteps,
            "targetEvaluations": self.targetEvaluations,
            "acceptanceRate": self.acceptanceRate,
            "expectedAcceptanceRate": self.expectedAcceptance / self.steps if self.steps else float("nan"),
            "acceptanceByPosition": self.acceptanceByPosition,
            "expectedAcceptanceByPosition": self.expectedAcceptanceByPosition,
            "stepsPerRound": self.stepsPerRound,
            "window": self.window,
            "volumeMoves": self.volumeMoves,
            "volumeMovesAccepted": self.volumeMovesAccepted,
            "barostatSeconds": self.barostatSeconds,
        }

    _COUNTERS = ("accepted", "rejected", "fallbacks", "rounds", "draftSteps", "targetEvaluations",
                 "expectedAcceptance", "attemptsByPosition", "acceptsByPosition", "expectedByPosition",
                 "_roundPosition", "draftSeconds", "draftIntegratorSeconds", "verifySeconds", "volumeMoves",
                 "volumeMovesAccepted", "barostatSeconds")

    def counters(self):
        """Every counter, for checkpoints (JSON-able)."""
        return {"window": self.window, **{name: getattr(self, name) for name in self._COUNTERS}}

    @classmethod
    def fromCounters(cls, counters, window, capacity=None):
        """Statistics continued from :meth:`counters` (by-position lists cut or padded to the capacity)."""
        s = cls(window, capacity)
        size = len(s.attemptsByPosition)
        for name in cls._COUNTERS:
            value = counters.get(name, getattr(s, name))
            if isinstance(value, list):
                value = (list(value) + [type(value[0])(0)] * size)[:size]
            setattr(s, name, value)
        if s._roundPosition >= window:
            s._roundPosition = 0
        return s

    def __repr__(self):
        return (f"Statistics(steps={self.steps}, accepted={self.accepted}, rejected={self.rejected}, "
                f"fallbacks={self.fallbacks}, rounds={self.rounds}, stepsPerRound={self.stepsPerRound:.3f})")


def speedupBound(expectedSteps, window, verifiers, targetSeconds, draftSeconds):
    """DESIGN.md section 7's bound with zero controller overhead: E T_t / (T_t ceil(k / K) + k T_d), for
    E = ``expectedSteps`` per round, window k, K verifiers, target and draft seconds per call; E / k
    without a measured target cost."""
    if not targetSeconds > 0:
        return expectedSteps / window
    return expectedSteps * targetSeconds / (targetSeconds * math.ceil(window / verifiers) + window * draftSeconds)


def bestWindow(statistics, targetSeconds, draftSeconds, slots, limit):
    """The window k <= ``limit`` that maximises DESIGN.md section 7's speedup bound

        E_k T_t / (T_t ceil(k / K) + k T_d),   E_k = sum_{i<k} prod_{j<i} alpha_j,

    alpha_j the mean exact acceptance 2 Phi(-|m|/2) at window position j so far (positions with
    fewer than 20 attempts take the last well-measured value, those before it the first), K =
    ``slots`` evaluations at once, T_t / T_d the target / draft seconds per call (with T_t = 0,
    E_k / k).  None while no position has 20 attempts.
    """
    alphas, last = [], None
    for attempts, expected in zip(statistics.attemptsByPosition, statistics.expectedByPosition):
        if attempts >= 20:
            last = expected / attempts
        alphas.append(last)
    if last is None:
        return None
    alphas = [a if a is not None else alphas[0] for a in alphas]
    Tt, Td = targetSeconds, draftSeconds
    best, bestK = -1.0, 1
    E, survive = 0.0, 1.0
    for k in range(1, limit + 1):
        E += survive
        survive *= alphas[k - 1]
        value = speedupBound(E, k, slots, Tt, Td)
        if value > best * (1 + 1e-9):
            best, bestK = value, k
    return bestK
