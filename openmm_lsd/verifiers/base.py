"""The interface between the controller and whatever evaluates the target.

The controller submits drafted positions under a key ``(epoch, index)`` (the
epoch changes at every draft restart, so stale work can be recognised) and asks
for results in index order.  Verifiers may evaluate eagerly (MPI ranks, as soon
as positions arrive), lazily (in-process, only what is asked for) or in batches;
the controller does not know which, and the trajectory does not depend on it
(DESIGN.md section 9).
"""

import numpy as np
import openmm


class Verifier:
    """Base class of target-force evaluators.

    Subclasses implement :meth:`submit`, :meth:`result` and :meth:`cancel`.
    Forces are returned as float64 arrays of shape (N, 3) in kJ/mol/nm.
    """

    #: number of target force evaluations performed (including discarded ones)
    numEvaluations = 0
    #: wall seconds spent inside target evaluations, as seen by this process
    targetSeconds = 0.0
    #: whether :meth:`resultWithDraft` also returns the draft forces at the submitted positions
    providesDraftForces = False
    #: how many evaluations run at once (MPI: the number of ranks; in-process: 1); None when submissions
    #: never wait for a free evaluator (batched verifiers). The controller's scheduling reads it.
    concurrency = None
    #: whether :meth:`submit` takes a periodic box and returns energies (needed for a barostat's volume moves)
    supportsVolumeMoves = False
    #: whether the target is evaluated on Contexts of Systems built apart from the simulation's (MPI ranks):
    #: the simulation then checks that they agree with its own Context at each new accepted history
    separateTarget = False

    def setParameters(self, parameters):
        """The target Context's global parameters (name -> value) in force for every later submission.

        The in-process verifier evaluates on the simulation's own Context, which holds them
        already; the MPI verifier sends them to its ranks.
        """

    def submit(self, key, positions, box=None, energy=False, urgent=False):
        """Queue an evaluation of the target forces at ``positions`` (nm, (N, 3) array).

        ``box`` ((3, 3), nm), where given, is set before the evaluation; with ``energy``
        the potential energy is computed too (:meth:`resultFull`).  Only verifiers with
        ``supportsVolumeMoves`` are ever given either.  ``urgent`` jobs (a volume move's
        trial, which the controller waits for) go before those already queued.
        """
        raise NotImplementedError

    def result(self, key):
        """Return the target forces for ``key``, waiting if they are not ready."""
        raise NotImplementedError

    def resultWithDraft(self, key):
        """``(target forces, draft forces or None)`` for ``key``.

        Verifiers that hold a draft Context too (MPI ranks) return the draft
        forces at the same positions, which the offset correction needs; the
        controller then need not read them back from its own draft Context.
        """
        return self.result(key), None

    def resultFull(self, key):
        """``(target forces, draft forces or None, potential energy in kJ/mol or None)`` for ``key``."""
        forces, draftForces = self.resultWithDraft(key)
        return forces, draftForces, None

    def cancel(self, predicate):
        """Forget every submitted key for which ``predicate(key)`` is true."""
        raise NotImplementedError

    def close(self):
        """Release resources (ranks, Contexts)."""


def stateArray(state, kind):
    """One per-particle vector of an OpenMM State (``'positions'``, ``'velocities'`` or ``'forces'``)
    as a float64 (N, 3) array in OpenMM's units (nm, nm/ps, kJ/mol/nm).

    Reads the State's buffer straight into numpy where OpenMM offers it, skipping the unit
    arithmetic of ``getPositions(asNumpy=True)`` (tens of microseconds per call, several calls per
    step on the controller's critical path); the public accessors otherwise.
    """
    read = getattr(state, "_getVectorAsNumpy", None)
    if read is not None:
        out = np.empty((state._getNumParticles(), 3), dtype=np.float64)
        read(_KINDS[kind], out)
        return out
    getter = {"positions": state.getPositions, "velocities": state.getVelocities, "forces": state.getForces}[kind]
    return np.asarray(getter(asNumpy=True)._value, dtype=np.float64)


_KINDS = {"positions": openmm.State.Positions, "velocities": openmm.State.Velocities, "forces": openmm.State.Forces}


def forcesFromState(state):
    """The forces of an OpenMM State as a float64 (N, 3) array in kJ/mol/nm."""
    return stateArray(state, "forces")
