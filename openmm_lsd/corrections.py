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

__all__ = ["makeCorrection", "NoCorrection", "OffsetCorrection", "ExtrapolateCorrection", "RefitCorrection",
           "LearnedCorrection", "CORRECTIONS"]

import time

import numpy as np
import openmm

DEFAULT_LAG = 8


class NoCorrection:
    """``'none'``: the draft runs on its own force field."""

    name = "none"
    lag = None
    order = 0

    def source(self, j, origin, restart):
        """The newest accepted index s whose force difference dF_s drafting step j uses, or None."""
        return None

    def combine(self, j, origin, restart, differences):
        """The correction (N, 3) for drafting step j from the accepted differences, or None."""
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
    order = 0

    def __init__(self, lag=DEFAULT_LAG):
        if isinstance(lag, bool) or not isinstance(lag, int) or lag < 1:
            raise ValueError(
                f"correction lag must be an integer >= 1, got {lag!r} (with lag 0 the offset would make the "
                "draft force equal the target force at every step, i.e. a serial target run)")
        self.lag = lag

    def source(self, j, origin, restart):
        s = max(j - 1 - self.lag, restart - 1)
        return s if s >= origin else None

    def combine(self, j, origin, restart, differences):
        s = self.source(j, origin, restart)
        return None if s is None else differences.get(s)

    def settings(self):
        return {"draftCorrection": self.name, "correctionLag": self.lag}


def lagrangeWeights(order, h):
    """Weights of the polynomial through nodes 0, -1, ..., -order evaluated at h (h steps past node 0)."""
    weights = []
    for k in range(order + 1):
        w = 1.0
        for m in range(order + 1):
            if m != k:
                w *= (h + m) / (m - k)
        weights.append(w)
    return weights


class ExtrapolateCorrection(OffsetCorrection):
    """``'extrapolate'`` (linear) / ``'extrapolate-quadratic'``: dF extrapolated in time to x_{j-1}.

    From the differences at the accepted indices s, s - 1 (, s - 2), with s the
    offset's source, the Lagrange polynomial through them evaluated h = min(j - 1 - s,
    horizon) steps past s: linear (1 + h) dF_s - h dF_{s-1}; quadratic
    (h+1)(h+2)/2 dF_s - h(h+2) dF_{s-1} + h(h+1)/2 dF_{s-2}.  Where the older points
    precede the run or were never formed, the order drops (down to the offset).
    Every input is accepted history chosen by index, so it is exact like the offset.

    Parameters
    ----------
    lag : int
        As for the offset.
    order : int
        1 (linear) or 2 (quadratic).
    horizon : int or None
        The furthest extrapolation, in steps (default: the lag). Measured on 8 waters
        against GFN2-xTB (`docs/acceptance.md`): quadratic, horizon 1 / 2 / 3 / 8 gave
        2.59 / 3.46 / 3.66 / 3.76 steps per round at 1/ps; cubic overfits (3.50).
    """

    def __init__(self, lag=DEFAULT_LAG, order=1, horizon=None):
        super().__init__(lag)
        if order not in (1, 2, 3):
            raise ValueError(f"extrapolation order must be 1, 2 or 3, got {order!r}")
        if horizon is None:
            horizon = lag
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 0:
            raise ValueError(f"extrapolation horizon must be an integer >= 0, got {horizon!r}")
        self.order = order
        self.horizon = horizon
        self.name = {1: "extrapolate", 2: "extrapolate-quadratic", 3: "extrapolate-cubic"}[order]

    def combine(self, j, origin, restart, differences):
        s = self.source(j, origin, restart)
        if s is None:
            return None
        points = []
        for k in range(self.order + 1):
            d = differences.get(s - k) if s - k >= origin else None
            if d is None:
                break
            points.append(d)
        if not points:
            return None
        h = min(j - 1 - s, self.horizon)
        if len(points) == 1 or h == 0:
            return points[0]
        weights = lagrangeWeights(len(points) - 1, h)
        out = weights[0] * points[0]
        for w, d in zip(weights[1:], points[1:]):
            out = out + w * d
        return out

    def settings(self):
        return {"draftCorrection": self.name, "correctionLag": self.lag, "horizon": self.horizon}


class _FittedCorrection(ExtrapolateCorrection):
    """What 'refit' and 'learned' share: a model in the draft whose coefficients are refitted for each block of
    ``every`` steps (:meth:`coefficients`), set on the draft Context before its block's first step, and the
    time extrapolation of what the model leaves at accepted positions."""

    residual = True  # extrapolate what the model leaves (False: the model alone)

    def _block(self, j):
        return (j - 1) // self.every

    @staticmethod
    def _prune(cache, block):
        for old in [b for b in cache if b < block - 3]:
            del cache[old]

    def prepare(self, j, draftContext):
        """Before drafting step j: the draft Context gets the coefficients of j's block."""
        block = self._block(j)
        if block != self._applied:
            self.model.apply(draftContext, self.coefficients(block))
            self._applied = block

    def _residuals(self, j, s, differences):
        """What the model of j's block leaves of dF at s, s - 1, ... (the points the extrapolation goes through)."""
        coefficients = self.coefficients(self._block(j))
        adjusted = {}
        for k in range(self.order + 1):
            d, g = differences.get(s - k), self._featuresAt(s - k)
            if d is None or g is None:
                break
            adjusted[s - k] = d - self.model.forces(g, coefficients)
        return adjusted

    def combine(self, j, origin, restart, differences):
        s = self.source(j, origin, restart)
        if s is None or not self.residual:
            return None
        return ExtrapolateCorrection.combine(self, j, origin, restart, self._residuals(j, s, differences))


class RefitCorrection(_FittedCorrection):
    """``'refit'``: the quadratic extrapolation, plus the draft's bonded terms refitted on the fly.

    Every ``every`` steps (at step indices fixed in advance) the draft's harmonic bond
    and angle parameters for the coming block of steps are refitted
    (:mod:`openmm_lsd.refit`) from the accepted positions and target-minus-original-draft
    differences with indices s <= (block start) - lag, the last ``span`` of them, and set
    with ``updateParametersInContext``; the offset part then extrapolates the residual
    R_s - G(x_s) delta of the refitted draft.  Everything the draft uses for step j is a
    function of the accepted history up to j - 1 - lag chosen by index, so it is exact
    (DESIGN.md section 9) and the trajectory does not depend on the window or the ranks.
    The differences are always taken against the *original* draft (MPI ranks keep it;
    in-process a force-only Context on a copy of it evaluates F_d once per step).
    """

    needsOriginalDraftForces = True

    def __init__(self, lag=DEFAULT_LAG, every=16, span=32, ridge=1e-3):
        super().__init__(lag, order=2)
        for label, value in (("every", every), ("span", span)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"refit {label} must be an integer >= 1, got {value!r}")
        self.every, self.span, self.ridge = every, span, float(ridge)
        self.name = "refit"
        self.model = None

    def bind(self, controller, originalDraft):
        from .refit import BondedModel

        self._controller = controller
        self.model = BondedModel(originalDraft)
        self.reset()

    def reset(self):
        """Forget cached fits and what the draft Context holds (after a checkpoint is loaded)."""
        self._deltas = {}
        self._applied = None
        self._features = {}

    def _featuresAt(self, s):
        """G(x_s) of the accepted position s (cached while s may still be read), or None."""
        if s not in self._features:
            x = self._controller.inputs.acceptedPositions.get(s)
            if x is None:
                return None
            self._features[s] = self.model.features(x)
            if len(self._features) > 4 * (self.span + self.every + self.lag + 8):
                for old in sorted(self._features)[: len(self._features) // 2]:
                    del self._features[old]
        return self._features[s]

    def retention(self):
        """How many indices before t - lag - 1 the fits may still read."""
        return self.span + self.every + self.order + 2

    def coefficients(self, block):
        """The bonded parameter changes delta for the steps of ``block``."""
        if block in self._deltas:
            return self._deltas[block]
        c = self._controller
        last = block * self.every - self.lag
        pairs = []
        differences = c.inputs.differences
        for s in range(max(last - self.span + 1, c.frontier.origin + 1), last + 1):
            r, rPrev = differences.get(s), differences.get(s - 1)
            if r is None or rPrev is None:
                continue
            g, gPrev = self._featuresAt(s), self._featuresAt(s - 1)
            if g is not None and gPrev is not None:
                pairs.append((gPrev, g, rPrev, r))
        delta = self.model.fit(pairs, self.ridge)
        self._deltas[block] = delta
        self._prune(self._deltas, block)
        return delta

    def settings(self):
        return {"draftCorrection": self.name, "correctionLag": self.lag, "every": self.every, "span": self.span}


#: What the learned correction's fit minimises: ``'lag'``, what the residual's extrapolation leaves at h = lag
#: (the change of the force difference from the extrapolated one, which decides acceptance), plus
#: ``forceWeight`` times the model's force error; ``'forces'``, the model's force error alone
OBJECTIVES = ("lag", "forces")
#: The learned correction's local response (:meth:`LearnedCorrection.combine`): the accepted frames it is fitted
#: on (offline on Cu13, 16 and 32 frames did as well, 64-128 worse: the map is local) and its ridge, relative to
#: the frames' mean squared displacement
RESPONSE_FRAMES = 16
RESPONSE_RIDGE = 1e-3
#: The force error's weight in the 'lag' objective: it keeps the model a sane force field where the
#: extrapolation has fewer points (offline on Cu13, 0.01-0.1 leave the predicted acceptance unchanged and
#: 0.1 keeps the model's own error at 46-67 meV/A against 82-350 with 0.01; docs/acceptance.md)
FORCE_WEIGHT = 0.1


class LearnedCorrection(_FittedCorrection):
    """``'learned'``: a model of F_target - F_draft as a function of position, fitted during the run, and the
    time extrapolation (``order``, default quadratic) of what it leaves.

    The model (:mod:`openmm_lsd.learned`: pair and embedding terms per species, linear in its
    coefficients theta) lives in the draft System as custom forces.  Every ``every`` steps, at step
    indices fixed in advance, theta for the coming block of steps is refitted by ridge regression
    in the coupling's metric from *all* accepted positions s <= (block start) - ``fitLag`` of the
    current accepted history and their target-minus-original-draft differences (normal
    equations summed in step order, kept in the checkpoint).  What the fit minimises
    (``objective``): by default (``'lag'``) what the correction then leaves, the error of the
    residual's extrapolation at h = lag, dF_s - P(dF_{s-L}, ...) - (G_s - P(G_{s-L}, ...)) theta with
    P the correction's Lagrange polynomial, plus ``forceWeight`` (0.1) times the model's force error
    dF_s - G_s theta; ``'forces'``: the force error alone (the only choice with ``residual=False``).
    The model's job is to make the residual easy to extrapolate, not to be small: on Cu13 at lag 32
    the 'lag' fit raised acceptance from 0.930 to 0.938 at 1/ps and from 0.960 to 0.967 at 10/ps
    (linear), with a model whose own error is larger (docs/acceptance.md).  With ``response`` (16
    frames by default; 0: off) a local response to the position the drafted step starts from is added
    (:meth:`combine`): 0.945 and 0.973 there.  So the draft for step j is a
    function of the accepted history up to j - 1 - max(lag, fitLag), chosen by index: exact, the
    same for any window or number of ranks (DESIGN.md sections 3, 9, 11).  Target forces at
    discarded drafts never enter.  The differences are taken against the original draft (MPI ranks
    keep it; in-process a force-only Context on a copy of it).  Under a barostat the frames are
    featurised in the current box.  ``basis`` passes options to the model (fewer centres, one species,
    three-body terms with ``angularLengths``, the draft's bonds, angles and torsions with ``bonded=True``, a
    region with ``particles``...); an ML/MM target's ML atoms are the region unless ``basis`` names one.
    """

    needsOriginalDraftForces = True

    def __init__(self, lag=DEFAULT_LAG, every=50, fitLag=None, ridge=1e-6, order=2, minFrames=None, basis=None,
                 residual=True, horizon=None, objective=None, forceWeight=FORCE_WEIGHT,
                 response=None, responseRidge=RESPONSE_RIDGE):
        super().__init__(lag, order=order, horizon=horizon)
        self.residual = bool(residual)  # False: the model alone, no extrapolation of what it leaves
        if objective is None:
            objective = "lag" if self.residual else "forces"
        if objective not in OBJECTIVES:
            raise ValueError(f"learned objective must be one of {OBJECTIVES}, got {objective!r}")
        if objective == "lag" and not self.residual:
            raise ValueError("learned objective 'lag' fits what the residual's extrapolation leaves; with "
                             "residual=False there is none: use objective='forces'")
        if not forceWeight >= 0:
            raise ValueError(f"learned forceWeight must be >= 0, got {forceWeight!r}")
        self.objective, self.forceWeight = objective, float(forceWeight)
        if response is None:  # the response extends the residual's extrapolation: the model alone has none
            response = RESPONSE_FRAMES if self.residual else 0
        if isinstance(response, bool) or not isinstance(response, int) or response < 0:
            raise ValueError(f"learned response must be an integer >= 0 (frames; 0: off), got {response!r}")
        if response and not self.residual:
            raise ValueError("learned response extends the residual's extrapolation; with residual=False there is none")
        if not responseRidge > 0:
            raise ValueError(f"learned responseRidge must be > 0, got {responseRidge!r}")
        self.response, self.responseRidge = response, float(responseRidge)
        self.usesStartPosition = response > 0  # combine() takes the position the drafted step starts from
        self.basis = dict(basis or {})  # options of learned.PairEmbeddingModel (centres, densityLengths, ...)
        if minFrames is not None and (isinstance(minFrames, bool) or not isinstance(minFrames, int) or minFrames < 1):
            raise ValueError(f"learned minFrames must be an integer >= 1, got {minFrames!r}")
        self.minFrames = minFrames
        fitLag = lag if fitLag is None else fitLag
        for label, value in (("every", every), ("fitLag", fitLag)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"learned {label} must be an integer >= 1, got {value!r}")
        if not ridge > 0:
            raise ValueError(f"learned ridge must be > 0, got {ridge!r}")
        if fitLag < lag:  # the fit must read only differences that the draft's readiness rule (lag) has made final
            raise ValueError(f"learned fitLag ({fitLag}) must be at least the lag ({lag})")
        self.every, self.fitLag, self.ridge = every, fitLag, float(ridge)
        self.name = "learned"
        self.model = None
        self.fitSeconds = 0.0
        self.refits = 0

    # ---- the draft System --------------------------------------------------------------------------

    def extendDraft(self, system, target=None):
        """A copy of the draft ``system`` with the model's forces (all coefficients 0).  Where the ``target``'s ML
        potential acts on some particles only (ML/MM), the model covers those (:func:`learned.targetRegion`)
        unless ``basis`` names its own ``particles``."""
        from .learned import PairEmbeddingModel, targetRegion

        if "particles" not in self.basis:
            region = targetRegion(target)
            if region is not None:
                self.basis["particles"] = region
        copy = openmm.XmlSerializer.clone(system)
        PairEmbeddingModel(system, **self.basis).addTo(copy)
        return copy

    @staticmethod
    def originalDraft(system):
        """``system`` (a copy of the extended draft) without the model's forces: the draft the differences are
        taken against."""
        for k in reversed(range(system.getNumForces())):
            if system.getForce(k).getName() == "LearnedCorrection":
                system.removeForce(k)
        return system

    def bind(self, controller, originalDraft):
        from .learned import PairEmbeddingModel

        self._controller = controller
        self.model = PairEmbeddingModel(originalDraft, **self.basis)
        self.reset()

    def reset(self):
        """A new accepted history: no data, no fit (theta = 0)."""
        n = self.model.numParameters if self.model is not None else 0
        self._A, self._y, self._rr = np.zeros((n, n)), np.zeros(n), 0.0  # the force error's normal equations
        self._Ac, self._yc, self._rc = np.zeros((n, n)), np.zeros(n), 0.0  # the extrapolation's error at h = lag
        self._changes = 0
        self._upTo = None  # the last step folded into the normal equations
        self._frames = 0
        self._thetas = {}
        self._features = {}
        self._applied = None
        self._latest = None  # the last unshrunk fit, which the next block's new frames validate
        self._shrink = 1.0 if self.minFrames is not None else 0.0  # damping of the fit (held-out frames)

    # ---- the fit -----------------------------------------------------------------------------------

    def retention(self):
        """How many indices before t - lag - 1 the fit may still read (frames not yet folded in)."""
        # a frame's change reads s - lag - order; the local response the frames s - response .. s
        return self.every + self.fitLag + self.lag + 2 * self.order + 2 + self.response

    def _featuresAt(self, s):
        if s not in self._features:
            x = self._controller.inputs.acceptedPositions.get(s)
            if x is None:
                return None
            self._features[s] = self.model.features(x, self._controller.frontier.box)
            if len(self._features) > 2 * (self.every + self.lag + self.order + self.response + 8):
                for old in sorted(self._features)[: len(self._features) // 2]:
                    del self._features[old]
        return self._features[s]

    def coefficients(self, block):
        """The coefficients in force for the steps of ``block``: fitted on the frames up to
        block * every - fitLag (zeros before any)."""
        if block in self._thetas:
            return self._thetas[block]
        if self._thetas and block > max(self._thetas) + 1:  # the blocks in order: each validates the one before
            for earlier in range(max(self._thetas) + 1, block):
                self.coefficients(earlier)
        from .learned import normalEquations, solveRidge

        c = self._controller
        last = block * self.every - self.fitLag
        start = time.perf_counter()
        first = c.frontier.origin + 1 if self._upTo is None else self._upTo + 1
        previous = self._latest
        fitted, heldOut = 0.0, 0.0  # sum r.(G theta_prev) and |G theta_prev|^2 over the new frames (metric W)
        for s in range(first, last + 1):
            d, g = c.inputs.differences.get(s), self._featuresAt(s)
            if d is None or g is None:
                continue
            anchorD, anchorG = c.inputs.differences.get(s - self.lag), self._featuresAt(s - self.lag)
            if previous is not None and anchorD is not None and anchorG is not None:
                # The new frames are held out for the fit made before them, judged as the correction uses
                # it: what it leaves of the difference's change over the lag (the offset's error at h = lag).
                w = self.model.weights
                change = (d - anchorD).ravel()
                predicted = ((g - anchorG) * previous[None, :]).sum(axis=1)
                fitted += float((change * predicted * w).sum())
                heldOut += float((predicted * predicted * w).sum())
            A, y = normalEquations(g, d.ravel(), self.model.weights)
            self._A += A
            self._y += y
            self._rr += float((d.ravel() * d.ravel() * self.model.weights).sum())
            self._frames += 1
            if self.objective == "lag":
                change = self._changeAt(s, d, g)
                if change is not None:
                    A, y = normalEquations(change[1], change[0].ravel(), self.model.weights)
                    self._Ac += A
                    self._yc += y
                    self._rc += float((change[0].ravel() * change[0].ravel() * self.model.weights).sum())
                    self._changes += 1
        self._upTo = max(last, first - 1)
        # Too few frames for the basis: theta = 0 (the residual's extrapolation alone, the 'extrapolate-quadratic'
        # correction) until at least 2 rows per coefficient, or ``minFrames``.
        massive = int((self.model.weights > 0).sum())
        enough = self.minFrames if self.minFrames is not None else -(-2 * self.model.numParameters // max(massive, 1))
        if self.objective == "lag":
            A, y = self._Ac + self.forceWeight * self._A, self._yc + self.forceWeight * self._y
        else:
            A, y = self._A, self._y
        raw = solveRidge(A, y, self.ridge) if self._frames >= enough else None
        if raw is not None and previous is not None and heldOut > 0:
            # Shrinkage from held-out frames: the factor in [0, 1] by which the previous fit best predicted, on
            # the frames it had not seen, the change of the force difference over the lag (what the residual's
            # extrapolation then has to follow). A fit that does not help there is damped, not trusted.
            self._shrink = min(1.0, max(0.0, fitted / heldOut))
        theta = np.zeros(self.model.numParameters) if raw is None else self._shrink * raw
        self._latest = raw
        self.fitSeconds += time.perf_counter() - start
        self.refits += 1
        self._thetas[block] = theta
        self._prune(self._thetas, block)
        return theta

    def combine(self, j, origin, restart, differences, start=None):
        """The residual's extrapolation (:class:`_FittedCorrection`), plus with ``response`` the local response
        to where the drafted step starts: J (x_{j-1}^d - P(x_s, x_{s-1}, ...)), P the same polynomial in time as
        the residual's, J the linear map from the displacements to the residual changes of the accepted frames
        s - response .. s - 1 relative to s (ridge regression, in the kernel form: a system of response x
        response).  A function of accepted history before j and of the position the step starts from, as a
        force of the draft is: exact (DESIGN.md sections 3, 11)."""
        s = self.source(j, origin, restart)
        if s is None or not self.residual:
            return None
        residuals = self._residuals(j, s, differences)
        out = ExtrapolateCorrection.combine(self, j, origin, restart, residuals)
        if out is None or not self.response or start is None:
            return out
        accepted = self._controller.inputs.acceptedPositions
        if not all(k in accepted for k in residuals):
            return out
        # the positions through the same points by the same rule as the residual's polynomial: P(x_s, x_{s-1}, ...)
        predicted = ExtrapolateCorrection.combine(self, j, origin, restart,
                                                  {k: np.asarray(accepted[k], dtype=np.float64) for k in residuals})
        anchor = np.asarray(accepted[s], dtype=np.float64), residuals[s]
        term = self._localResponse(j, s, origin, differences, start, predicted, anchor)
        return out if term is None else out + term

    def _localResponse(self, j, s, origin, differences, start, predicted, anchor):
        """J (start - predicted), J fitted on the frames before s relative to ``anchor`` (x_s, its residual)."""
        from .learned import solveSymmetric

        theta = self.coefficients(self._block(j))
        positions = self._controller.inputs.acceptedPositions

        def frame(k):
            d, g, x = differences.get(k), self._featuresAt(k), positions.get(k)
            if k < origin or d is None or g is None or x is None:
                return None
            return np.asarray(x, dtype=np.float64), d - self.model.forces(g, theta)

        keep = self.model.weights > 0  # the model's particles (a region's, or every massive one)
        root = np.sqrt(np.where(keep, 1.0 / np.where(keep, self.model.weights, 1.0), 0.0))  # sqrt(m) per component
        D, R = self._responseRows(s, anchor, frame, keep, root, theta)
        if len(D) < 2:
            return None
        D, R = np.array(D), np.array(R)
        K = (D[:, None, :] * D[None, :, :]).sum(axis=2)
        K = K + self.responseRidge * float(np.trace(K)) / D.shape[1] * np.eye(len(D))
        delta = ((np.asarray(start, dtype=np.float64) - predicted).ravel() * root)[keep]
        beta = solveSymmetric(K, (D * delta[None, :]).sum(axis=1))
        term = np.zeros(keep.size)
        term[keep] = (beta[:, None] * R).sum(axis=0)
        return term.reshape(anchor[1].shape)

    def _responseRows(self, s, anchor, frame, keep, root, theta):
        """The local response's rows: mass-weighted displacements sqrt(m)(x_k - x_s) and residual changes
        r_k - r_s of the accepted frames k = s - response .. s - 1 (the model's particles' components)."""
        rows = [f for f in (frame(k) for k in range(s - self.response, s)) if f is not None]
        return ([((x - anchor[0]).ravel() * root)[keep] for x, _ in rows],
                [(r - anchor[1]).ravel()[keep] for _, r in rows])

    def _changeAt(self, s, d, g):
        """(what the extrapolation leaves of the difference at s, the same of the features) for the 'lag'
        objective: dF_s - P(dF_{s-L}, dF_{s-L-1}, ...) and G_s - P(G_{s-L}, ...), P the correction's Lagrange
        polynomial at h = min(lag, horizon) steps past s - L (the steady state of a window: source s - L); None
        where the points precede the run."""
        h = min(self.lag, self.horizon)
        weights = lagrangeWeights(self.order, h) if self.order else [1.0]
        origin = self._controller.frontier.origin
        change, features = d.copy(), g.copy()
        for k, w in enumerate(weights):
            index = s - self.lag - k
            dk = self._controller.inputs.differences.get(index) if index >= origin else None
            gk = self._featuresAt(index) if dk is not None else None
            if dk is None or gk is None:
                return None
            change -= w * dk
            features -= w * gk
        return change, features

    def fitReport(self, scheme):
        """The latest fit on its own training frames: refits, frames, fit seconds, and the weighted residual as
        the mean |m| it leaves per step and as an RMS force error (meV/A, at the frames' mean 1/m)."""
        theta = self._thetas[max(self._thetas)] if self._thetas else np.zeros(len(self._y))
        frames = max(self._frames, 1)
        raw = self._rr / frames
        left = max(self._rr - 2 * float((theta * self._y).sum()) + float(theta @ self._A @ theta), 0.0) / frames
        c = scheme  # integrators.Coefficients of the run
        perM = (c.meanFactor() * c.dt / c.sigmaFactor()) ** 2 / c.kT  # |m|^2 per weighted squared error
        components = float((self.model.weights > 0).sum())
        meanInverseMass = float(self.model.weights.sum()) / max(components, 1.0)
        toMeV = 1.0 / 0.96485  # 1 kJ/mol/nm = 1.0364 meV/A
        report = {"refits": self.refits, "frames": self._frames, "fit_seconds": self.fitSeconds,
                  "coefficients": len(self._y), "objective": self.objective,
                  "raw_m": float(np.sqrt(perM * raw)), "fitted_m": float(np.sqrt(perM * left)),
                  "raw_rms_mev_per_A": float(np.sqrt(raw / components / meanInverseMass)) * toMeV,
                  "fitted_rms_mev_per_A": float(np.sqrt(left / components / meanInverseMass)) * toMeV}
        if self._changes:  # what the extrapolation leaves at h = lag, without and with the model
            raw = self._rc / self._changes
            left = max(self._rc - 2 * float((theta * self._yc).sum()) + float(theta @ self._Ac @ theta), 0.0)
            left /= self._changes
            report.update({"lag_raw_m": float(np.sqrt(perM * raw)), "lag_fitted_m": float(np.sqrt(perM * left)),
                           "lag_raw_rms_mev_per_A": float(np.sqrt(raw / components / meanInverseMass)) * toMeV,
                           "lag_fitted_rms_mev_per_A": float(np.sqrt(left / components / meanInverseMass)) * toMeV})
        return report

    # ---- checkpoints -------------------------------------------------------------------------------

    def checkpointState(self):
        """(fields, arrays) of the fit: its normal equations so far and the coefficients cached by block."""
        meta = {"upTo": self._upTo, "frames": self._frames, "blocks": sorted(self._thetas), "rr": self._rr,
                "shrink": self._shrink, "changes": self._changes, "rc": self._rc}
        arrays = {"learned/A": self._A, "learned/y": self._y, "learned/Ac": self._Ac, "learned/yc": self._yc}
        if self._latest is not None:
            arrays["learned/latest"] = self._latest
        arrays.update({f"learned/theta/{b}": t for b, t in self._thetas.items()})
        return meta, arrays

    def restoreState(self, meta, arrays):
        self._A, self._y = np.array(arrays["learned/A"]), np.array(arrays["learned/y"])
        self._upTo, self._frames, self._rr = meta["upTo"], int(meta["frames"]), float(meta.get("rr", 0.0))
        if "learned/Ac" in arrays:
            self._Ac, self._yc = np.array(arrays["learned/Ac"]), np.array(arrays["learned/yc"])
            self._changes, self._rc = int(meta.get("changes", 0)), float(meta.get("rc", 0.0))
        self._shrink = float(meta.get("shrink", 0.0))
        self._latest = np.array(arrays["learned/latest"]) if "learned/latest" in arrays else None
        self._thetas = {int(b): np.array(arrays[f"learned/theta/{b}"]) for b in meta["blocks"]}
        self._applied = None

    def settings(self):
        return {"draftCorrection": self.name, "correctionLag": self.lag, "every": self.every, "fitLag": self.fitLag,
                "ridge": self.ridge, "order": self.order, "minFrames": self.minFrames, "residual": self.residual,
                "horizon": self.horizon, "objective": self.objective, "forceWeight": self.forceWeight,
                "response": self.response, "responseRidge": self.responseRidge}


CORRECTIONS = ("none", "offset", "extrapolate", "extrapolate-quadratic", "refit", "learned")


def makeCorrection(draftCorrection, lag=None):
    """Build a correction from its name (one of :data:`CORRECTIONS`) or pass a correction object through."""
    if not isinstance(draftCorrection, str):
        if all(hasattr(draftCorrection, a) for a in ("source", "combine", "order", "lag", "name")):
            return draftCorrection
        raise ValueError(f"unknown draftCorrection {draftCorrection!r}: use one of {list(CORRECTIONS)}")
    name = draftCorrection.lower()
    lag = DEFAULT_LAG if lag is None else lag
    if name == "none":
        return NoCorrection()
    if name == "offset":
        return OffsetCorrection(lag)
    if name == "extrapolate":
        return ExtrapolateCorrection(lag, order=1)
    if name == "extrapolate-quadratic":
        return ExtrapolateCorrection(lag, order=2)
    if name == "refit":
        return RefitCorrection(lag)
    if name == "learned":
        return LearnedCorrection(lag)
    raise ValueError(f"unknown draftCorrection {draftCorrection!r}: use one of {list(CORRECTIONS)}")
