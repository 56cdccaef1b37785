"""Draft corrections: forces added to the draft to keep it near the target.

A correction only moves the draft mean, so any correction is exact provided the
correction used for drafting step t is a function of the *accepted* history
alone, chosen by step index with a fixed lag (DESIGN.md sections 3 and 9):
target forces at discarded draft positions are never used.

The correction for drafting step j (which starts from x_{j-1}) uses the force
difference dF_s = F_t(x_s) - F_d(x_s) at one accepted position s, chosen by
index: the newer of s = j - 1 - lag and s = r - 1, where r is the step at which
the draft last restarted (a rejection, a fallback, or a state set by the user).
Both are known when step j is drafted without waiting for the target: x_{j-1-L}
was verified at least L steps ago, and F_t(x_{r-1}) is what verified step r.
Both are functions of the accepted history before step j (rejection indices
included), so the run stays exact and the same for any window or verifier
count (DESIGN.md section 9).  This is DESIGN.md section 7's "offset from the
last verified position before the restart", refreshed every step afterwards.
"""

__all__ = ["makeCorrection"]

DEFAULT_LAG = 8


class NoCorrection:
    """``'none'``: the draft runs on its own force field."""

    name = "none"
    lag = None

    def source(self, j, origin, restart):
        """The accepted index s whose force difference dF_s drafting step j uses, or None."""
        return None

    def settings(self):
        return {"draftCorrection": self.name}


class OffsetCorrection:
    """``'offset'``: c_j = F_t(x_s) - F_d(x_s), s = max(j - 1 - lag, r - 1) (zero while s precedes the run).

    Parameters
    ----------
    lag : int
        L >= 1.  The draft may run at most L steps past the verified frontier,
        which caps throughput at (1 - alpha^L)/(1 - alpha) steps per target
        latency (DESIGN.md section 7).  (L = 0 would be the target itself.)
    """

    name = "offset"

    def __init__(self, lag=DEFAULT_LAG):
        if isinstance(lag, bool) or not isinstance(lag, int) or lag < 1:
            raise ValueError(
                f"correction lag must be an integer >= 1, got {lag!r} (with lag 0 the offset would make the "
                "draft force equal the target force at every step, i.e. a serial target run)")
        self.lag = lag

    def source(self, j, origin, restart):
        s = max(j - 1 - self.lag, restart - 1)
        return s if s >= origin else None

    def settings(self):
        return {"draftCorrection": self.name, "correctionLag": self.lag}


def makeCorrection(draftCorrection, lag=None):
    """Build a correction from its name (``'none'`` or ``'offset'``) or pass an object through."""
    if not isinstance(draftCorrection, str):
        if hasattr(draftCorrection, "source") and hasattr(draftCorrection, "value"):
            return draftCorrection
        raise ValueError(f"unknown draftCorrection {draftCorrection!r}: use 'none' or 'offset'")
    name = draftCorrection.lower()
    if name == "none":
        return NoCorrection()
    if name == "offset":
        return OffsetCorrection(DEFAULT_LAG if lag is None else lag)
    raise ValueError(f"unknown draftCorrection {draftCorrection!r}: use 'none' or 'offset'")
