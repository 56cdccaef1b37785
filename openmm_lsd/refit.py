"""On-the-fly refit of the draft's bonded terms against target forces at verified positions.

The draft's ``HarmonicBondForce`` and ``HarmonicAngleForce`` terms are written as
E = k q^2 / 2 - c q (q a bond length or an angle, c = k q0), which is linear in
(k, c), so the force change from parameter changes delta is linear too:
dF(x) = G(x) delta.  The refit solves a ridge-regularised least-squares problem for
delta from *consecutive* accepted positions, where the residual R_s = F_t(x_s) -
F_d(x_s) of the original draft changes by R_s - R_{s-1} ~ (G(x_s) - G(x_{s-1})) delta:
differencing in time leaves the slowly varying part of the error to the offset
correction and fits the fast, configuration-dependent part (bond stretches and angle
bends, whose force constants and equilibria differ between force fields and QM).
Rows are weighted by 1/sqrt(m) (the coupling's metric, DESIGN.md section 7) and the
new constants are kept within [k/4, 4k], equilibria within 0.02 nm / 0.2 rad of the
original, so that a refit cannot make the draft unstable.  Constrained bonds are left out.
"""

import numpy as np
import openmm
from openmm import unit


class BondedModel:
    """The refittable bonded terms of a draft System and their parameter-derivative forces."""

    def __init__(self, system):
        constrained = set()
        for k in range(system.getNumConstraints()):
            i, j, _ = system.getConstraintParameters(k)
            constrained.add((min(i, j), max(i, j)))
        self.numParticles = system.getNumParticles()
        self.bonds, self.angles = [], []  # (force index, term index, atoms, q0, k)
        for f, force in enumerate(system.getForces()):
            if isinstance(force, openmm.HarmonicBondForce):
                for t in range(force.getNumBonds()):
                    i, j, r0, k = force.getBondParameters(t)
                    r0, k = r0.value_in_unit(unit.nanometer), k.value_in_unit(unit.kilojoule_per_mole / unit.nanometer**2)
                    if (min(i, j), max(i, j)) not in constrained and k > 0:
                        self.bonds.append((f, t, (i, j), r0, k))
            elif isinstance(force, openmm.HarmonicAngleForce):
                for t in range(force.getNumAngles()):
                    i, j, m, theta0, k = force.getAngleParameters(t)
                    theta0, k = theta0.value_in_unit(unit.radian), k.value_in_unit(unit.kilojoule_per_mole / unit.radian**2)
                    if k > 0:
                        self.angles.append((f, t, (i, j, m), theta0, k))
        self.numParameters = 2 * (len(self.bonds) + len(self.angles))
        self.masses = np.array([system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(self.numParticles)])

    def _indices(self):
        if not hasattr(self, "_bondAtoms"):
            self._bondAtoms = np.array([atoms for _, _, atoms, _, _ in self.bonds], dtype=int).reshape(-1, 2)
            self._angleAtoms = np.array([atoms for _, _, atoms, _, _ in self.angles], dtype=int).reshape(-1, 3)
        return self._bondAtoms, self._angleAtoms

    def features(self, x):
        """G(x): shape (N*3, P); column 2p is dF/dk_p, column 2p+1 is dF/dc_p."""
        x = np.asarray(x)
        bonds, angles = self._indices()
        G = np.zeros((self.numParticles, self.numParameters, 3))
        nb = len(bonds)
        if nb:
            d = x[bonds[:, 1]] - x[bonds[:, 0]]
            r = np.linalg.norm(d, axis=1)
            u = d / r[:, None]
            cols = 2 * np.arange(nb)
            # E = k r^2/2 - c r: F_i = (k r - c) u, F_j = -(k r - c) u
            G[bonds[:, 0], cols] += r[:, None] * u
            G[bonds[:, 1], cols] -= r[:, None] * u
            G[bonds[:, 0], cols + 1] -= u
            G[bonds[:, 1], cols + 1] += u
        if len(angles):
            a = x[angles[:, 0]] - x[angles[:, 1]]
            b = x[angles[:, 2]] - x[angles[:, 1]]
            la, lb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
            ua, ub = a / la[:, None], b / lb[:, None]
            cos = np.clip((ua * ub).sum(axis=1), -1.0, 1.0)
            sin = np.sqrt(np.maximum(1.0 - cos * cos, 1e-12))
            ok = (sin > 0.05).astype(float)[:, None]  # leave out near-linear angles
            theta = np.arccos(cos)[:, None]
            di = ok * (cos[:, None] * ua - ub) / (la * sin)[:, None]
            dm = ok * (cos[:, None] * ub - ua) / (lb * sin)[:, None]
            dj = -(di + dm)
            cols = 2 * nb + 2 * np.arange(len(angles))
            # E = k theta^2/2 - c theta: F = -(k theta - c) dtheta/dx; atoms of one angle are distinct
            for column, grads in ((cols, (-theta * di, -theta * dj, -theta * dm)), (cols + 1, (di, dj, dm))):
                for atom, grad in zip(angles.T, grads):
                    G[atom, column] += grad
        return G.transpose(0, 2, 1).reshape(self.numParticles * 3, self.numParameters)

    def forces(self, features, delta):
        """The bonded force change G(x) delta, shape (N, 3), from ``features(x)``."""
        return (features @ delta).reshape(self.numParticles, 3)

    def fit(self, pairs, ridge=1e-3):
        """delta from [(G(x_prev), G(x), R_prev, R)]: least squares of (G(x) - G(x_prev)) delta = R - R_prev,
        clipped (features as :meth:`features` returns them)."""
        if not pairs or self.numParameters == 0:
            return np.zeros(self.numParameters)
        weight = np.repeat(1.0 / np.sqrt(np.where(self.masses > 0, self.masses, np.inf)), 3)
        rows, rhs = [], []
        for gPrev, g, rPrev, r in pairs:
            rows.append((g - gPrev) * weight[:, None])
            rhs.append((r - rPrev).ravel() * weight)
        A, y = np.vstack(rows), np.concatenate(rhs)
        scale = np.sqrt((A * A).sum(axis=0)) + 1e-300
        As = A / scale
        n = As.shape[1]
        lam = ridge * len(pairs)
        solution = np.linalg.solve(As.T @ As + lam * np.eye(n), As.T @ y) / scale
        return self.clip(solution)

    def clip(self, delta):
        delta = np.array(delta)
        p = 0
        for terms, window in ((self.bonds, 0.02), (self.angles, 0.2)):
            for _, _, _, q0, k in terms:
                kNew = np.clip(k + delta[p], 0.25 * k, 4.0 * k)
                cNew = np.clip(k * q0 + delta[p + 1], kNew * (q0 - window), kNew * (q0 + window))
                delta[p], delta[p + 1] = kNew - k, cNew - k * q0
                p += 2
        return delta

    def apply(self, context, delta):
        """Set the draft Context's bonded parameters to the original ones plus ``delta``."""
        system = context.getSystem()
        touched = set()
        p = 0
        for f, t, atoms, q0, k in self.bonds:
            force = system.getForce(f)
            kNew = k + delta[p]
            force.setBondParameters(t, atoms[0], atoms[1], (k * q0 + delta[p + 1]) / kNew, kNew)
            touched.add(f)
            p += 2
        for f, t, atoms, q0, k in self.angles:
            force = system.getForce(f)
            kNew = k + delta[p]
            force.setAngleParameters(t, atoms[0], atoms[1], atoms[2], (k * q0 + delta[p + 1]) / kNew, kNew)
            touched.add(f)
            p += 2
        for f in sorted(touched):
            system.getForce(f).updateParametersInContext(context)
