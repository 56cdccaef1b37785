"""Offline (fourth session): local refits on recent frames only, Cu13 GFN1-xTB, predicted acceptance at lag 32.

    OMP_NUM_THREADS=1 python docs/learned/offline_extra/loc.py FRICTION

The 21-term basis, or 156 per-pair central terms, refitted for every source s on the changes r_k - r_s of the
last 16-64 frames, with the time polynomial of order 0/1/2. Measured at 1/ps: 0.873-0.922 (the best equal to the
global fit's quadratic extrapolation: 0.922).
"""
import sys, os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import numpy as np
import offline_residual as O
from openmm_lsd.learned import PairEmbeddingModel, solveRidge
from openmm_lsd.corrections import lagrangeWeights
from openmm_lsd.testsystems import copper
friction = float(sys.argv[1]); steps = 1500
system0, xs, ds = O.trajectory(friction, steps)
system = copper("cluster", 13).draft
k = O.METRIC[friction]; split = 2 * steps // 3
model = PairEmbeddingModel(system)
G = np.array([model.features(x) for x in xs])
A = np.einsum("tip,tiq->pq", G[:split], G[:split]); y = np.einsum("tip,ti->p", G[:split], ds[:split].reshape(split, -1))
res = ds - (G @ solveRidge(A, y, 1e-6)).reshape(ds.shape)
T = len(xs); X = xs.reshape(T, -1); R = res.reshape(T, -1)
# per-pair central features
n = 13; I, Jn = np.triu_indices(n, 1)
def pairFeatures(x):
    dd = x[I] - x[Jn]; r = np.linalg.norm(dd, axis=1); u = dd / r[:, None]
    F = np.zeros((n, 3, len(I), 2))
    for m, f in enumerate((np.ones_like(r), r - 0.26)):
        np.add.at(F[:, :, :, m], (I, slice(None), np.arange(len(I))), 0)  # placeholder
        for p in range(len(I)):
            F[I[p], :, p, m] += f[p] * u[p]; F[Jn[p], :, p, m] -= f[p] * u[p]
    return F.reshape(n * 3, -1)
P = np.array([pairFeatures(x) for x in xs])
def alphas(errfun, H=32):
    a, rms = {}, {}
    for h in range(1, H + 1):
        e = errfun(h); a[h] = O.predictedAcceptance(e, k); rms[h] = float(np.sqrt((e**2).mean()) / O.KJ_PER_MEV_A)
    return a, rms
def report(name, a, rms):
    print(name, "pred", round(O.chainAcceptance(a, 32), 3), {h: (round(rms[h], 1), round(a[h], 3)) for h in (1, 4, 8, 16, 32)}, flush=True)
def poly(Z, s, h, order):
    w = lagrangeWeights(order, h) if order else [1.0]
    return sum(wk * Z[s - kk] for kk, wk in enumerate(w))
def make(F, N, lam, order):
    cache = {}
    def th(s):
        if s not in cache:
            dg = F[s - N:s] - F[s]; dr = R[s - N:s] - R[s]   # (N, 39, P)
            Aa = np.einsum("nip,niq->pq", dg, dg); yy = np.einsum("nip,ni->p", dg, dr)
            cache[s] = solveRidge(Aa, yy, lam) if Aa.shape[0] < 60 else np.linalg.solve(Aa + lam * np.diag(np.diag(Aa)) + 1e-12*np.eye(len(yy)), yy)
        return cache[s]
    def err(h):
        out = []
        for t in range(split, T):
            s = t - h
            out.append(R[t] - poly(R, s, h, order) - (F[t] - poly(F, s, h, order)) @ th(s))
        return np.array(out)
    return err
aq, rq = alphas(lambda h: O.extrapolationErrors(res, h, 2, split)); report("quadratic", aq, rq)
for name, F in (("basis21", G), ("pairs156", P)):
    for N in (16, 32, 64):
        for lam in (1e-4, 1e-2):
            for order in (0, 1, 2):
                a, rm = alphas(make(F, N, lam, order)); report(f"{name} N={N} lam={lam} order={order}", a, rm)
