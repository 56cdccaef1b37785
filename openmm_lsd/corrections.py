"""Draft corrections: forces added to the draft to keep it near the target.

A correction only moves the draft mean, so any correction is exact provided the
correction used for drafting step t is a function of the *accepted* history
alone, chosen by step index with a fixed lag (DESIGN.md sections 3 and 9):
target forces at discarded draft positions are never used.

The correction for drafting step j (which starts from x_{j-1}) may use the
force difference dF_s = F_t(x_s) - F_d(x_s) at accepted positions
s <= j - 1 - lag.  With lag L >= 1 the draft may run L steps past the
verified frontier without waiting.
"""

__all__ = ["makeCorrection"]

DEFAULT_LAG = 8


class NoCorrection:
    """``'none'``: the draft runs on its own force field."""

    name = "none"
    lag = None

    def source(self, j, origin):
        """The accepted index whose force difference drafting step j needs, or None."""
        return None

    def value(self, j, origin, differences):
        return None

    def settings(self):
        return {"draftCorrection": self.name}


class OffsetCorrection:
    """``'offset'``: c_j = F_t(x_s) - F_d(x_s) with s = j - 1 - lag (zero while s precedes the run).

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

    def source(self, j, origin):
        s = j - 1 - self.lag
        return s if s >= origin else None

    def value(self, j, origin, differences):
        s = self.source(j, origin)
        return None if s is None else differences[s]

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
