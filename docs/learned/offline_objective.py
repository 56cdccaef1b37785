"""What the learned correction's fit should minimise, and its local response: an offline study on Cu13.

    python docs/learned/offline_objective.py FRICTION > docs/learned/offline-objective-gFRICTION.json

The serial GFN1-xTB run of :mod:`offline_residual` (1500 steps, 2 fs, 300 K, seed 1; the fit on the first
1000 frames, the acceptance predicted on the last 500 with its chain at lag 32). For the default basis and
the three-body one, with the residual extrapolated linearly and quadratically:

- ``forces``: the fit of the force error dF_t - G_t theta (the correction's fit before the fourth session);
- ``lag``: the fit of what the correction leaves at h = 32, dF_t - P(dF_{t-32}, ...) - (G_t - P(G_{t-32}, ...))
  theta, plus 0.1 times the force error (``objective='lag'``, ``forceWeight=0.1``);
- ``lag + response``: the same plus the local response J (x_t - P(x_{t-h}, ...)), J the ridge map (1e-3 of the
  mean squared displacement) from the displacements to the residual changes of the 16 frames before the
  source (``response=16``).

Each row: the model's RMS force error on the test frames (meV/A) and the predicted mean acceptance.
"""

import json
import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import offline_residual as O  # noqa: E402

from openmm_lsd.corrections import lagrangeWeights  # noqa: E402
from openmm_lsd.learned import PairEmbeddingModel, solveRidge  # noqa: E402

BASES = {"default (21)": {}, "three-body (33)": dict(angularLengths=(0.03, 0.06, 0.12))}
LAG, FRAMES, RIDGE, FORCE_WEIGHT = 32, 16, 1e-3, 0.1


def polynomial(Z, s, h, order):
    return sum(w * Z[s - k] for k, w in enumerate(lagrangeWeights(order, h)))


def main():
    friction = float(sys.argv[1])
    system, xs, ds = O.trajectory(friction, 1500)
    T, split, k = len(xs), 1000, O.METRIC[friction]
    X, D = xs.reshape(T, -1), ds.reshape(T, -1)
    out = {"friction_per_ps": friction, "fit_frames": [0, split], "test_frames": [split, T], "rows": {}}
    for name, basis in BASES.items():
        model = PairEmbeddingModel(system, **basis)
        G = np.array([model.features(x) for x in xs])
        A = np.einsum("tip,tiq->pq", G[:split], G[:split])
        y = np.einsum("tip,ti->p", G[:split], D[:split])
        for order in (1, 2):
            t = np.arange(LAG + order, split)
            Gd = G[t] - sum(w * G[t - LAG - j] for j, w in enumerate(lagrangeWeights(order, LAG)))
            Yd = D[t] - sum(w * D[t - LAG - j] for j, w in enumerate(lagrangeWeights(order, LAG)))
            fits = {"forces": solveRidge(A, y, 1e-6),
                    "lag": solveRidge(np.einsum("tip,tiq->pq", Gd, Gd) + FORCE_WEIGHT * A,
                                      np.einsum("tip,ti->p", Gd, Yd) + FORCE_WEIGHT * y, 1e-6)}
            for label, theta in fits.items():
                R = D - (G @ theta)
                rms = float(np.sqrt((R[split:] ** 2).mean()) / O.KJ_PER_MEV_A)
                variants = [(label, False)] + ([("lag + response", True)] if label == "lag" else [])
                for variant, response in variants:
                    cache = {}

                    def J(s):
                        if s not in cache:
                            dx, dr = X[s - FRAMES:s] - X[s], R[s - FRAMES:s] - R[s]
                            M = dx.T @ dx
                            cache[s] = np.linalg.solve(M + RIDGE * np.trace(M) / len(M) * np.eye(len(M)), dx.T @ dr)
                        return cache[s]

                    def errors(h):
                        e = [R[t] - polynomial(R, t - h, h, order) for t in range(split, T)]
                        if response:
                            e = [e[i] - (X[t] - polynomial(X, t - h, h, order)) @ J(t - h)
                                 for i, t in enumerate(range(split, T))]
                        return np.array(e)

                    alpha = {h: O.predictedAcceptance(errors(h), k) for h in range(1, LAG + 1)}
                    row = {"model_rms_meV_A": rms, "predicted_acceptance_lag32": O.chainAcceptance(alpha, LAG),
                           "alpha_at_h": {h: alpha[h] for h in (1, 4, 8, 16, 32)}}
                    key = f"{name}, {'linear' if order == 1 else 'quadratic'}, {variant}"
                    out["rows"][key] = row
                    print(key, round(rms, 1), round(row["predicted_acceptance_lag32"], 3), file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
