"""The interface between the controller and whatever evaluates the target.

The controller submits drafted positions under a key ``(epoch, index)`` (the
epoch changes at every draft restart, so stale work can be recognised) and asks
for results in index order.  Verifiers may evaluate eagerly (MPI ranks, as soon
as positions arrive), lazily (in-process, only what is asked for) or in batches;
the controller does not know which, and the trajectory does not depend on it
(DESIGN.md section 9).
"""

from typing import NamedTuple, Optional

import numpy as np
import openmm
from openmm import unit


class Evaluation(NamedTuple):
    """What a verifier returns for one submitted position.

    Parameters
    ----------
    forces : numpy.ndarray
        Target forces (N, 3) in kJ/mol/nm.
    draftForces : numpy.ndarray, optional
        The draft forces at the same positions, where the verifier computes them (MPI ranks).
    energy : float, optional
        The target's potential energy in kJ/mol, where it was asked for.
    """

    forces: np.ndarray
    draftForces: Optional[np.ndarray] = None
    energy: Optional[float] = None


def asEvaluation(result):
    """An :class:`Evaluation` from a verifier's result (a plain force array from a user's own verifier too)."""
    return result if isinstance(result, Evaluation) else Evaluation(np.asarray(result, dtype=np.float64))


def createContext(system, integrator, platform=None, properties=None):
    """An OpenMM Context on ``platform`` (OpenMM's choice when None) with ``properties``."""
    if platform is None:
        return openmm.Context(system, integrator)
    return openmm.Context(system, integrator, platform, properties or {})


def evaluate(context, positions, box=None, energy=False):
    """(forces (N, 3) in kJ/mol/nm, potential energy in kJ/mol or None) of ``context`` at ``positions`` (nm),
    in ``box`` ((3, 3) nm) where given: the one way every verifier and the controller evaluate a Context."""
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(positions)
    state = context.getState(getForces=True, getEnergy=energy)
    return stateArray(state, "forces"), (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
                                         if energy else None)


class Verifier:
    """Base class of target-force evaluators.

    Subclasses implement :meth:`submit`, :meth:`result` and :meth:`cancel`.
    :meth:`result` returns an :class:`Evaluation` (a plain float64 (N, 3) force array in
    kJ/mol/nm is accepted too, from verifiers written before it).
    """

    #: number of target force evaluations performed (including discarded ones)
    numEvaluations = 0
    #: wall seconds spent inside target evaluations, as seen by this process
    targetSeconds = 0.0
    #: whether :meth:`result` also returns the draft forces at the submitted positions
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
        the potential energy is computed too (:meth:`result`).  Only verifiers with
        ``supportsVolumeMoves`` are ever given either.  ``urgent`` jobs (a volume move's
        trial, which the controller waits for) go before those already queued.
        """
        raise NotImplementedError

    def result(self, key):
        """The :class:`Evaluation` for ``key``, waiting if it is not ready."""
        raise NotImplementedError

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
    # OpenMM's State._getVectorAsNumpy (with _getNumParticles, the size of the buffer it fills) is the package's
    # one use of a third party's private names, for speed.
    read = getattr(state, "_getVectorAsNumpy", None)
    if read is not None:
        out = np.empty((state._getNumParticles(), 3), dtype=np.float64)
        read(_KINDS[kind], out)
        return out
    getter = {"positions": state.getPositions, "velocities": state.getVelocities, "forces": state.getForces}[kind]
    return np.asarray(getter(asNumpy=True).value_in_unit(_UNITS[kind]), dtype=np.float64)


_UNITS = {"positions": unit.nanometer, "velocities": unit.nanometer / unit.picosecond,
          "forces": unit.kilojoule_per_mole / unit.nanometer}
_KINDS = {"positions": openmm.State.Positions, "velocities": openmm.State.Velocities, "forces": openmm.State.Forces}


def forcesFromState(state):
    """The forces of an OpenMM State as a float64 (N, 3) array in kJ/mol/nm."""
    return stateArray(state, "forces")
