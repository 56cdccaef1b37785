"""The explicit state of a speculative run (DESIGN.md sections 3, 4, 9), one object per kind, each with
its checkpoint form: scalar fields go to JSON, arrays to the npz, under the names the fields have.

* :class:`Frontier`: the verified frontier, the accepted target state (x_t, v^t_t) at step t and
  where the draft last restarted;
* :class:`DraftedAhead`: the steps drafted past the frontier, one record each, and the target
  evaluations that came back for them;
* :class:`CorrectionInputs`: dF_s = F_t(x_s) - F_d(x_s) at accepted s (and the accepted positions a
  refit reads), the only inputs a draft correction may use.
"""

import dataclasses
from typing import Optional

import numpy as np


@dataclasses.dataclass
class Frontier:
    """The accepted target state at step ``step`` and the bookkeeping of the current round."""

    #: t, the last verified step
    step: Optional[int] = None
    #: the step this accepted history began at (a reset)
    origin: Optional[int] = None
    #: r, the step the draft last restarted from (a rejection, a fallback, a reset, an accepted volume move)
    restartStep: Optional[int] = None
    #: the step the current round began at (the round lock's reference)
    roundStart: Optional[int] = None
    #: the last step whose volume move was decided
    moveStep: Optional[int] = None
    #: x_t (N, 3) nm and v^t_t (N, 3) nm/ps
    positions: Optional[np.ndarray] = None
    velocities: Optional[np.ndarray] = None
    #: (3, 3) nm for a periodic System, else None
    box: Optional[np.ndarray] = None

    _SCALARS = ("step", "origin", "restartStep", "roundStart", "moveStep")
    _ARRAYS = ("positions", "velocities", "box")

    def checkpoint(self):
        """(JSON-able fields, named arrays)."""
        return ({name: getattr(self, name) for name in self._SCALARS},
                {name: getattr(self, name) for name in self._ARRAYS if getattr(self, name) is not None})

    def restore(self, meta, arrays):
        for name in self._SCALARS:
            value = meta.get(name)
            setattr(self, name, None if value is None else int(value))
        for name in self._ARRAYS:
            if name in arrays:
                setattr(self, name, np.array(arrays[name]))


class Draft:
    """What the controller keeps of one drafted step j.

    ``failed``: the draft cannot go on from x_j^d (its step threw, or x_j^d or x_pre^d is not
    finite); the step is still coupled when x_pre^d (hence mu_d) is finite.
    """

    __slots__ = ("xi", "logU", "rng", "xpre", "positions", "fd", "failed")


class DraftedAhead:
    """The steps drafted past the frontier and what the verifier returned for the submitted positions."""

    def __init__(self):
        self.clear(None)

    def clear(self, step):
        """Nothing drafted past ``step`` (a restart)."""
        #: j -> :class:`Draft`
        self.records = {}
        #: index -> F_t(x_index), E_t(x_index) where asked for, F_d(x_index) where the verifier returns it
        self.forces, self.energies, self.draftForces = {}, {}, {}
        self.draftStep = step  # the last drafted step
        self.submitted = step  # the last step whose position went to the verifier
        self.failed = False  # the draft failed at draftStep and cannot go on

    def prune(self, t):
        """Forget what step t's verification used up (x_t itself may still await submission: window 1)."""
        for store in (self.records, self.forces, self.energies, self.draftForces):
            store.pop(t - 1, None)

    def checkpoint(self, step, draftForcesAt, needDraftForces):
        """(fields, arrays) of the records past ``step``; a record's missing F_d(x_{j-1}) is computed with
        ``draftForcesAt`` where ``needDraftForces`` (the running records are left as they are)."""
        pending, arrays = [], {}
        for j in range(step + 1, self.draftStep + 1):
            record = self.records[j]
            fd = record.fd
            if fd is None and needDraftForces and record.positions is not None:
                previous = self.records.get(j - 1)
                fd = draftForcesAt(previous.positions if previous is not None else None)
            pending.append({"step": j, "failed": bool(record.failed), "fd": fd is not None,
                            "xpre": record.xpre is not None})
            for name, value in (("positions", record.positions), ("xpre", record.xpre), ("fd", fd)):
                if value is not None:
                    arrays[f"record/{j}/{name}"] = value
        return {"draftStep": self.draftStep, "draftFailed": self.failed, "pending": pending}, arrays

    def restore(self, meta, arrays, noise):
        """Records from :meth:`checkpoint`'s output; ``noise(j)`` gives (xi, log U, generator) of step j."""
        self.draftStep = int(meta["draftStep"])
        self.failed = bool(meta["draftFailed"])
        self.records = {}
        for item in meta["pending"]:
            j = int(item["step"])
            record = Draft()
            record.xi, record.logU, record.rng = noise(j)
            record.failed = bool(item["failed"])
            record.positions = arrays.get(f"record/{j}/positions")
            record.xpre = arrays.get(f"record/{j}/xpre") if item.get("xpre", record.positions is not None) else None
            record.fd = arrays.get(f"record/{j}/fd") if item["fd"] else None
            self.records[j] = record


class CorrectionInputs:
    """dF_s at accepted positions s (and the positions x_s a refit reads), pruned by index."""

    def __init__(self):
        self.differences = {}
        self.acceptedPositions = {}

    def start(self, step, positions):
        """A new accepted history at ``step``."""
        self.differences = {}
        self.acceptedPositions = {step: positions}

    def prune(self, t, correction, restartStep):
        """Keep what pending and future drafts may read: dF_s for s >= t - lag - 1 - order, or around the last
        restart's r - 1, and the positions a refit's window of fits reads."""
        order = getattr(correction, "order", 0)
        keep = t - (correction.lag or 0) - 1 - order
        if hasattr(correction, "retention"):
            keep -= correction.retention()
            for s in [s for s in self.acceptedPositions if s < keep]:
                del self.acceptedPositions[s]
        restart = restartStep - 1
        for s in [s for s in self.differences if s < keep and not restart - order <= s <= restart]:
            del self.differences[s]

    def checkpoint(self, withPositions):
        arrays = {f"difference/{s}": d for s, d in self.differences.items()}
        if withPositions:
            arrays.update({f"accepted/{s}": x for s, x in self.acceptedPositions.items()})
        return arrays

    def restore(self, arrays):
        def stored(prefix):
            return {int(name.split("/")[1]): np.array(a) for name, a in arrays.items() if name.startswith(prefix)}

        self.differences = stored("difference/")
        self.acceptedPositions = stored("accepted/")
