"""LeapfrogLangevinIntegrator against the closed form of one step (DESIGN.md section 6)."""

import numpy as np
import openmm
import pytest
from openmm import unit
from scipy import stats

from openmm_lsd import LeapfrogLangevinIntegrator

KT = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin) * 300.0


def one_step_samples(integrator, n=20_000):
    """One particle (mass 12) under F = -k x + c; n single steps from the same (x0, v0)."""
    system = openmm.System()
    system.addParticle(12.0)
    force = openmm.CustomExternalForce("0.5*k*(x^2+y^2+z^2) - c*x")
    force.addGlobalParameter("k", 500.0)
    force.addGlobalParameter("c", 400.0)
    force.addParticle(0, [])
    system.addForce(force)
    integrator.setRandomNumberSeed(17)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    x0, v0 = np.array([[0.05, -0.02, 0.01]]), np.array([[0.3, 0.1, -0.2]])
    out = np.empty((n, 2, 3))
    for i in range(n):
        context.setPositions(x0)
        context.setVelocities(v0)
        integrator.step(1)
        state = context.getState(getPositions=True, getVelocities=True)
        out[i, 0] = state.getPositions(asNumpy=True)._value[0]
        out[i, 1] = state.getVelocities(asNumpy=True)._value[0]
    force_x0 = -500.0 * x0[0] + np.array([400.0, 0, 0])
    return out, x0[0], v0[0], force_x0


def leapfrog_law(x0, v0, f, gamma, dt, m=12.0):
    """v' ~ N(a v0 + (1-a)/gamma f/m, (1-a^2) kT/m), x' = x0 + dt v' (no constraints)."""
    a = np.exp(-gamma * dt)
    mean_v = a * v0 + (1 - a) / gamma * f / m
    sd_v = np.sqrt((1 - a * a) * KT / m)
    return x0 + dt * mean_v, dt * sd_v, mean_v, sd_v


def bonferroni_p(samples, law):
    mean_x, sd_x, mean_v, sd_v = law
    ps = []
    for d in range(3):
        ps.append(stats.kstest((samples[:, 0, d] - mean_x[d]) / sd_x, "norm").pvalue)
        ps.append(stats.kstest((samples[:, 1, d] - mean_v[d]) / sd_v, "norm").pvalue)
    return min(1.0, len(ps) * min(ps))


def test_one_step_law_is_the_closed_form():
    """20,000 one-step samples; KS of each standardized coordinate of x' and v' against N(0, 1),
    Bonferroni over 6 tests: p > 1e-3.  Controls: the same samples against the law without the force
    term (a drift error of 0.7 standard deviations) and against a noise width off by 10%: p < 1e-6."""
    gamma, dt = 20.0, 0.004
    samples, x0, v0, f = one_step_samples(LeapfrogLangevinIntegrator(300, gamma, dt))
    assert bonferroni_p(samples, leapfrog_law(x0, v0, f, gamma, dt)) > 1e-3
    mean_x, sd_x, mean_v, sd_v = leapfrog_law(x0, v0, f, gamma, dt)
    wrong_drift = leapfrog_law(x0, v0, 0.0 * f, gamma, dt)
    assert bonferroni_p(samples, wrong_drift) < 1e-6
    assert bonferroni_p(samples, (mean_x, 1.1 * sd_x, mean_v, 1.1 * sd_v)) < 1e-6


def test_units_and_getters():
    integrator = LeapfrogLangevinIntegrator(310 * unit.kelvin, 2 / unit.picosecond, 1 * unit.femtoseconds)
    assert integrator.getTemperature() == 310 * unit.kelvin
    assert integrator.getFriction() == 2 / unit.picosecond
    assert integrator.getStepSize() == 0.001 * unit.picoseconds
    with pytest.raises(ValueError, match="frictionCoeff must be > 0"):
        LeapfrogLangevinIntegrator(300, 0, 0.001)
