"""Offline (fourth session): a small network on the learned model's residual, Cu13 GFN1-xTB, and the acceptance it predicts.

    OMP_NUM_THREADS=1 python docs/learned/offline_extra/nn.py FRICTION WIDTH EPOCHS res|raw

Per-atom energy MLP (two SiLU layers of WIDTH) on 12 radial and 12 three-body descriptors, trained with Adam on the
first 1000 frames of offline_residual.trajectory (forces by autograd), tested on the last 500; 'res' fits what the
21-term linear model leaves, 'raw' the whole difference. Measured: `1 32 1500 res` test 19.7 meV/A, predicted 0.920
(quadratic) / 0.922 (linear); `1 64 1500 raw` 29.4 meV/A, 0.911 / 0.909. Seconds: about 200 per run.
"""
import os, sys, math, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import numpy as np, torch
import offline_residual as O
torch.set_num_threads(1); torch.manual_seed(0)
friction = float(sys.argv[1]); width = int(sys.argv[2]); epochs = int(sys.argv[3]); which = sys.argv[4]
system0, xs, ds = O.trajectory(friction, 1500)
T = len(xs); split = 1000; k = O.METRIC[friction]
if which == "res":
    from openmm_lsd.learned import PairEmbeddingModel, solveRidge
    from openmm_lsd.testsystems import copper
    model = PairEmbeddingModel(copper("cluster", 13).draft)
    G = np.array([model.features(x) for x in xs])
    A = np.einsum("tip,tiq->pq", G[:split], G[:split]); y = np.einsum("tip,ti->p", G[:split], ds[:split].reshape(split, -1))
    ds = ds - (G @ solveRidge(A, y, 1e-6)).reshape(ds.shape)
X = torch.tensor(xs, dtype=torch.float64); Y = torch.tensor(ds, dtype=torch.float64)
n = 13; I, J = np.triu_indices(n, 1)
centres = torch.linspace(0.20, 0.62, 12, dtype=torch.float64); W = 0.04; rc = 0.65
lengths = torch.tensor([0.03, 0.06, 0.12], dtype=torch.float64)
def descriptors(x):  # x (B, n, 3) -> (B, n, F)
    d = x[:, None, :, :] - x[:, :, None, :]  # d[b,i,j] = x_j - x_i
    r = torch.sqrt((d * d).sum(-1) + torch.eye(n, dtype=x.dtype))
    mask = 1 - torch.eye(n, dtype=x.dtype)
    fc = 0.5 * (torch.cos(math.pi * r / rc) + 1) * (r < rc) * mask
    rad = (torch.exp(-((r[..., None] - centres) / W) ** 2) * fc[..., None]).sum(2)  # (B,n,12)
    phi = torch.exp(-(r[..., None] - 0.25) / lengths) * fc[..., None]  # (B,n,n,L)
    u = d / r[..., None]
    cos = torch.einsum("bijc,bikc->bijk", u, u)
    P = [torch.ones_like(cos), cos, 1.5 * cos**2 - 0.5, 2.5 * cos**3 - 1.5 * cos]
    ang = []
    for l in range(3):
        pp = phi[..., l]
        for p in P:
            ang.append(torch.einsum("bij,bik,bijk->bi", pp, pp, p))
    return torch.cat([rad, torch.stack(ang, -1)], -1)
Dtr = descriptors(X[:split]); mu, sd = Dtr.mean((0, 1)), Dtr.std((0, 1)) + 1e-9
net = torch.nn.Sequential(torch.nn.Linear(24, width), torch.nn.SiLU(), torch.nn.Linear(width, width), torch.nn.SiLU(), torch.nn.Linear(width, 1)).double()
def forces(x):
    x = x.clone().requires_grad_(True)
    E = net((descriptors(x) - mu) / sd).sum()
    return -torch.autograd.grad(E, x, create_graph=True)[0]
opt = torch.optim.Adam(net.parameters(), lr=3e-3)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
scale = float(Y[:split].std())
t0 = time.time()
for ep in range(epochs):
    idx = torch.randperm(split)[:200]
    loss = ((forces(X[idx]) - Y[idx]) ** 2).mean() / scale**2
    opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    if ep % (epochs // 5) == 0 or ep == epochs - 1:
        with torch.no_grad():
            pass
        te = forces(X[split:]).detach(); tr = forces(X[:split]).detach()
        print(ep, "train", float(((tr - Y[:split])**2).mean().sqrt()) / O.KJ_PER_MEV_A, "test", float(((te - Y[split:])**2).mean().sqrt()) / O.KJ_PER_MEV_A, round(time.time() - t0, 1), flush=True)
F = forces(X).detach().numpy(); res = ds - F
for order in (0, 1, 2):
    alpha = {h: O.predictedAcceptance(O.extrapolationErrors(res, h, order, split), k) for h in range(1, 33)}
    print("order", order, "pred", round(O.chainAcceptance(alpha, 32), 3), {h: round(alpha[h], 3) for h in (1, 4, 8, 16, 32)})
