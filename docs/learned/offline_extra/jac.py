"""Offline (fourth session): a Jacobian of the residual from recent frames, without the time polynomial.

    OMP_NUM_THREADS=1 python docs/learned/offline_extra/jac.py FRICTION

r_t ~ r_s + J_s (x_t - x_s), J_s by ridge on the last N = 16-128 frames, on the learned model's residual ('model')
and on the raw difference ('raw'). Measured at 1/ps: at h = 32 the error falls from 117 to 61 meV/A, at h <= 8 it
rises, and the predicted acceptance is 0.919 at best (quadratic extrapolation: 0.922). With the time polynomial
(docs/learned/offline_objective.py, the engine's local response) it helps.
"""
import sys, os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import numpy as np
import offline_residual as O
from openmm_lsd.learned import PairEmbeddingModel, solveRidge

friction = float(sys.argv[1]); steps = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
cache = f"/tmp/lsd-offline-traj-g{friction:g}-{steps}.npz"
if os.path.exists(cache):
    d = np.load(cache); xs, ds = d["xs"], d["ds"]
    from openmm_lsd.testsystems import copper
    system = copper("cluster", 13).draft
else:
    system, xs, ds = O.trajectory(friction, steps)
    np.savez(cache, xs=xs, ds=ds)
k = O.METRIC[friction]; split = 2 * steps // 3
model = PairEmbeddingModel(system)
G = np.array([model.features(x) for x in xs])
A = np.einsum("tip,tiq->pq", G[:split], G[:split]); y = np.einsum("tip,ti->p", G[:split], ds[:split].reshape(split, -1))
theta = solveRidge(A, y, 1e-6)
res = ds - (G @ theta).reshape(ds.shape)
T = len(xs); X = xs.reshape(T, -1); 
def report(name, errfun, H=32):
    alpha = {}; rms = {}
    for h in range(1, H + 1):
        e = errfun(h)
        alpha[h] = O.predictedAcceptance(e, k); rms[h] = float(np.sqrt((e**2).mean()) / O.KJ_PER_MEV_A)
    print(name, "pred", round(O.chainAcceptance(alpha, H), 3), {h: (round(rms[h], 1), round(alpha[h], 3)) for h in (1, 4, 8, 16, 32)}, flush=True)

def jacErr(r, N, lam, mode="plain"):
    R = r.reshape(T, -1)
    cache = {}
    def J(s):
        if s not in cache:
            dx = X[s - N:s] - X[s]; dr = R[s - N:s] - R[s]
            if mode == "quad":
                pass
            Ax = dx.T @ dx; Ax += lam * np.trace(Ax) / Ax.shape[0] * np.eye(Ax.shape[0])
            cache[s] = np.linalg.solve(Ax, dx.T @ dr)  # J^T
        return cache[s]
    def err(h):
        out = []
        for t in range(split, T):
            s = t - h
            out.append(R[t] - R[s] - (X[t] - X[s]) @ J(s))
        return np.array(out)
    return err

for name, r in (("model", res), ("raw", ds)):
    report(name + " quadratic", lambda h: O.extrapolationErrors(r, h, 2, split))
    for N in (16, 32, 64, 128):
        for lam in (1e-3, 1e-2, 1e-1):
            report(f"{name} jac N={N} lam={lam}", jacErr(r, N, lam))
