"""What a position-dependent model must reach for acceptance 0.95 at lag 32 on Cu13: an offline study.

    python docs/learned/offline_residual.py FRICTION [STEPS] > docs/learned/offline-residual-gFRICTION.json

One serial run of OpenMM's LangevinMiddleIntegrator on the GFN1-xTB target (Cu13, 2 fs, 300 K, seed 1,
Reference platform), the Sutton-Chen draft's forces evaluated at the same positions. For each basis of
:class:`openmm_lsd.learned.PairEmbeddingModel`: a ridge fit (the correction's ``solveRidge``) on the first
two thirds of the frames, then on the last third

- the model's RMS force error per Cartesian component (meV/A),
- the error of the residual's time extrapolation (offset / linear / quadratic through the residuals at
  s, s - 1, s - 2) evaluated h steps past s: the draft's error h steps after a restart (the correction's
  source is s = max(j - 1 - L, r - 1), so with L >= the window h is the distance from the last restart);
- the acceptance at each h, alpha(h) = mean over frames of 2 Phi(-|m_t|/2) with |m_t| = k_gamma x (RMS over
  the 39 components of that error, kJ/mol/nm), k_gamma = 0.031 at 1/ps and 0.0099 at 10/ps (DESIGN.md
  section 11);
- the same with the extrapolated change scaled by a factor w_h per h, least squares on the fit's frames
  ('-shrunk': what a correction could learn from its accepted history, as the fit is learned);
- the same for the default basis's residual scaled by 0.5, 0.25, 0.1 (a model that much better, its error
  with the same time structure);
- the mean acceptance this predicts at lag L = 32: the stationary mean of the chain "h -> min(h + 1, L)
  when accepted (probability alpha(h)), h -> 1 when rejected".

The fit here sees every earlier frame at once (the run refits every 50 steps), so the figures bound what
the run's correction can do with the same basis; the predicted acceptance for the no-model row is the
check of the predictor against the measured 'extrapolate-quadratic' runs (docs/acceptance.md).
"""

import json
import math
import sys
import time

import numpy as np
import openmm
from openmm import unit

from openmm_lsd.corrections import lagrangeWeights
from openmm_lsd.learned import PairEmbeddingModel, solveRidge
from openmm_lsd.testsystems import copper

METRIC = {1.0: 0.031, 10.0: 0.0099}  # |m| per RMS component error in kJ/mol/nm (DESIGN.md section 11)
KJ_PER_MEV_A = 0.0964853 * 10  # 1 meV/A = 0.965 kJ/mol/nm

BASES = {
    "none": None,
    "default (21 terms)": {},
    "+ three-body 0.03/0.06/0.12, orders 0-3 (33)": dict(angularLengths=(0.03, 0.06, 0.12)),
    "+ three-body, orders 0-4 (36)": dict(angularLengths=(0.03, 0.06, 0.12), angularOrders=(0, 1, 2, 3, 4)),
    "24 pair centres, 4x4 embedding (40)": dict(centres=tuple(0.20 + 0.42 * k / 23 for k in range(24)),
                                                densityLengths=(0.02, 0.04, 0.08, 0.16),
                                                powers=(0.5, 1.0, 1.5, 2.0)),
    "24 centres, 4x4 embedding, three-body 5 lengths orders 0-4 (65)": dict(
        centres=tuple(0.20 + 0.42 * k / 23 for k in range(24)), densityLengths=(0.02, 0.04, 0.08, 0.16),
        powers=(0.5, 1.0, 1.5, 2.0), angularLengths=(0.02, 0.03, 0.06, 0.09, 0.12), angularOrders=(0, 1, 2, 3, 4)),
}


def trajectory(friction, steps):
    cluster = copper("cluster", 13)
    platform = openmm.Platform.getPlatformByName("Reference")
    integrator = openmm.LangevinMiddleIntegrator(300, friction, 0.002)
    integrator.setRandomNumberSeed(1)
    target = openmm.Context(cluster.target, integrator, platform)
    draft = openmm.Context(cluster.draft, openmm.VerletIntegrator(0.001), platform)
    target.setPositions(cluster.positions)
    target.setVelocitiesToTemperature(300, 1)
    xs, ds = [], []
    for _ in range(steps):
        integrator.step(1)
        state = target.getState(getPositions=True, getForces=True)
        x = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        draft.setPositions(x)
        fd = draft.getState(getForces=True).getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        xs.append(np.array(x))
        ds.append(np.array(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)) - fd)
    return cluster.draft, np.array(xs), np.array(ds)


def extrapolationErrors(r, h, order, first):
    """e_t = r_t - (the polynomial of the given order through r_s, ..., r_{s-order} at h past s = t - h), t >= first."""
    w = lagrangeWeights(order, h) if order else [1.0]
    return np.array([r[t] - sum(wk * r[t - h - k] for k, wk in enumerate(w)) for t in range(first, len(r))])


def shrunkErrors(r, h, order, split):
    """As :func:`extrapolationErrors` with the extrapolated change scaled by w_h, the least-squares factor on
    the fit's frames (t < split): r_t ~ r_s + w_h (P_h - r_s)."""
    w = lagrangeWeights(order, h) if order else [1.0]
    def parts(first, last):
        base = np.array([r[t - h] for t in range(first, last)])
        change = np.array([sum(wk * r[t - h - k] for k, wk in enumerate(w)) for t in range(first, last)]) - base
        return np.array([r[t] for t in range(first, last)]) - base, change
    target, change = parts(h + order, split)
    weight = float((target * change).sum() / max((change * change).sum(), 1e-300))
    target, change = parts(split, len(r))
    return target - weight * change, weight


def chainAcceptance(alpha, lag):
    """Stationary mean acceptance of h -> min(h + 1, lag) (accepted, alpha[h]) / h -> 1 (rejected)."""
    weight, p = [], 1.0
    for h in range(1, lag + 1):
        weight.append(p)
        p *= alpha[h]
    weight[-1] /= max(1.0 - alpha[lag], 1e-12)  # the geometric tail that stays at h = lag
    weight = np.array(weight) / sum(weight)
    return float(sum(w * alpha[h] for w, h in zip(weight, range(1, lag + 1))))


def predictedAcceptance(errors, k):
    m = k * np.sqrt((errors.reshape(len(errors), -1) ** 2).mean(axis=1))
    return float(np.mean([2 * 0.5 * math.erfc(v / 2 / math.sqrt(2)) for v in m]))


def main():
    friction = float(sys.argv[1])
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
    start = time.perf_counter()
    system, xs, ds = trajectory(friction, steps)
    k = METRIC[friction]
    split = 2 * steps // 3
    out = {"friction_per_ps": friction, "steps": steps, "fit_frames": [0, split], "test_frames": [split, steps],
           "trajectory_seconds": time.perf_counter() - start,
           "raw_rms_meV_A": float(np.sqrt((ds[split:] ** 2).mean()) / KJ_PER_MEV_A), "bases": {}}
    for name, basis in BASES.items():
        if basis is None:
            residual, terms, rms = ds, 0, out["raw_rms_meV_A"]
        else:
            model = PairEmbeddingModel(system, **basis)
            G = np.array([model.features(x) for x in xs])  # (T, 39, P)
            A = np.einsum("tip,tiq->pq", G[:split], G[:split])
            y = np.einsum("tip,ti->p", G[:split], ds[:split].reshape(split, -1))
            theta = solveRidge(A, y, 1e-6)
            residual = ds - (G @ theta).reshape(ds.shape)
            terms, rms = model.numParameters, float(np.sqrt((residual[split:] ** 2).mean()) / KJ_PER_MEV_A)
        row = {"terms": terms, "model_rms_meV_A": rms}
        for order, label in ((0, "offset"), (1, "linear"), (2, "quadratic")):
            alpha, errors = {}, {}
            for h in range(1, 33):
                e = extrapolationErrors(residual, h, order, split)
                alpha[h] = predictedAcceptance(e, k)
                errors[h] = float(np.sqrt((e ** 2).mean()) / KJ_PER_MEV_A)
            row[label] = {"rms_meV_A_at_h": {h: errors[h] for h in (1, 2, 4, 8, 16, 32)},
                          "alpha_at_h": {h: alpha[h] for h in (1, 2, 4, 8, 16, 32)},
                          "predicted_acceptance_lag32": chainAcceptance(alpha, 32)}
        for order, label in ((1, "linear-shrunk"), (2, "quadratic-shrunk")):
            alpha, errors, weights = {}, {}, {}
            for h in range(1, 33):
                e, weights[h] = shrunkErrors(residual, h, order, split)
                alpha[h] = predictedAcceptance(e, k)
                errors[h] = float(np.sqrt((e ** 2).mean()) / KJ_PER_MEV_A)
            row[label] = {"rms_meV_A_at_h": {h: errors[h] for h in (1, 2, 4, 8, 16, 32)},
                          "alpha_at_h": {h: alpha[h] for h in (1, 2, 4, 8, 16, 32)},
                          "weight_at_h": {h: weights[h] for h in (1, 2, 4, 8, 16, 32)},
                          "predicted_acceptance_lag32": chainAcceptance(alpha, 32)}
        out["bases"][name] = row
        if name == "default (21 terms)":  # a model s times better with the same time structure of its error
            out["default_residual_scaled"] = {}
            for scale in (0.5, 0.25, 0.1):
                alpha = {h: predictedAcceptance(scale * extrapolationErrors(residual, h, 2, split), k)
                         for h in range(1, 33)}
                out["default_residual_scaled"][scale] = {
                    "model_rms_meV_A": scale * rms, "quadratic_predicted_acceptance_lag32": chainAcceptance(alpha, 32),
                    "offset_predicted_acceptance_lag32": chainAcceptance(
                        {h: predictedAcceptance(scale * extrapolationErrors(residual, h, 0, split), k)
                         for h in range(1, 33)}, 32)}
            print("scaled", out["default_residual_scaled"], file=sys.stderr)
        print(name, terms, round(rms, 1), {label: round(row[label]["predicted_acceptance_lag32"], 3)
                                           for label in ("offset", "linear", "quadratic", "linear-shrunk",
                                                         "quadratic-shrunk")},
              {h: round(a, 3) for h, a in row["quadratic"]["alpha_at_h"].items()}, file=sys.stderr)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
