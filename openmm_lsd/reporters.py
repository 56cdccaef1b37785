"""OpenMM-style reporters for speculative runs."""

import time

from openmm import unit


class StatisticsReporter:
    """Report acceptance and throughput of a :class:`~openmm_lsd.SpeculativeSimulation` as CSV.

    Used like OpenMM's ``StateDataReporter``::

        sim.reporters.append(StatisticsReporter("statistics.csv", 100))

    Columns: step, acceptance rate and steps per round so far, acceptance over the
    last interval, rounds, target evaluations (discarded ones included), draft
    steps, and ns/day of simulated time over the last interval (wall clock).

    Parameters
    ----------
    file : str or file-like
        Path (opened for writing) or an object with ``write``.
    reportInterval : int
        Steps between reports.
    timeStep : float or None
        The step in ps, for ns/day; taken from the simulation when None.
    append : bool
        Append to an existing file (no header), as when resuming from a checkpoint.
    """

    columns = ("step", "acceptance_rate", "steps_per_round", "interval_acceptance_rate", "rounds",
               "target_evaluations", "draft_steps", "ns_per_day")

    def __init__(self, file, reportInterval, timeStep=None, append=False):
        if isinstance(reportInterval, bool) or not isinstance(reportInterval, int) or reportInterval < 1:
            raise ValueError(f"reportInterval must be a positive integer, got {reportInterval!r}")
        self._interval = reportInterval
        self._own = isinstance(file, str)
        self._out = open(file, "a" if append else "w") if self._own else file
        self._timeStep = timeStep
        self._last = None
        if not append:
            self._out.write(",".join(self.columns) + "\n")

    def describeNextReport(self, simulation):
        steps = self._interval - simulation.currentStep % self._interval
        return {"steps": steps, "periodic": None, "include": []}

    def report(self, simulation, state):
        s = simulation.statistics
        now = time.perf_counter()
        step = simulation.currentStep
        if self._timeStep is None:
            self._timeStep = simulation.integrator.getStepSize().value_in_unit(unit.picosecond)
        rate = float("nan")
        accepted = s.accepted
        if self._last is not None:
            lastStep, lastTime, lastAccepted, lastSteps = self._last
            if s.steps > lastSteps:
                interval = (accepted - lastAccepted) / (s.steps - lastSteps)
            else:
                interval = float("nan")
            if now > lastTime:
                rate = (step - lastStep) * self._timeStep * 1e-3 / (now - lastTime) * 86400
        else:
            interval = s.acceptanceRate
        self._last = (step, now, accepted, s.steps)
        values = (step, s.acceptanceRate, s.stepsPerRound, interval, s.rounds, s.targetEvaluations, s.draftSteps, rate)
        self._out.write(",".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in values) + "\n")
        if hasattr(self._out, "flush"):
            self._out.flush()

    def __del__(self):
        if getattr(self, "_own", False):
            self._out.close()
