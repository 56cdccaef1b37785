"""Bad input gets a clear error before any work starts; failing forces stop at the last good step."""

import numpy as np
import openmm
import pytest
from hypothesis import given, settings, strategies as st
from openmm import unit

from openmm_lsd import SpeculativeSimulation

from systems import startPositions, startVelocities, topology, toy


def build(target=None, draft=None, **kw):
    target = target if target is not None else toy()
    draft = draft if draft is not None else toy()
    args = dict(temperature=300, frictionCoeff=1.0, stepSize=0.002, platform="Reference", seed=1)
    args.update(kw)
    return SpeculativeSimulation(topology(target.getNumParticles()), target, draft, **args)


def test_particle_count():
    with pytest.raises(ValueError, match="draft System has 2 particles, target has 3"):
        build(draft=toy(2))


def test_constraints():
    with pytest.raises(ValueError, match="constraints"):
        build(target=toy(constraint=True))
    draft = toy()
    draft.addConstraint(0, 1, 0.2)
    with pytest.raises(ValueError, match="constraint \\(0, 1\\) has length 0.2"):
        build(target=toy(constraint=True), draft=draft)


def test_virtual_sites():
    with pytest.raises(ValueError, match="virtual site in the target System only"):
        draft = toy()
        draft.addParticle(0.0)
        build(target=toy(virtualSite=True), draft=draft)


def test_virtual_site_definitions_must_be_the_target_s():
    """Sites are kinematics: another definition in the draft is refused, naming the site and both definitions."""
    draft = toy(virtualSite=True, site=openmm.TwoParticleAverageSite(0, 2, 0.2, 0.8))
    with pytest.raises(ValueError, match=r"particle 3 is a virtual site defined differently in the draft "
                                         r"\(TwoParticleAverageSite of particles \[0, 2\] with \(0.2, 0.8\)\) and the "
                                         r"target \(TwoParticleAverageSite of particles \[0, 1\] with \(0.5, 0.5\)\)"):
        build(target=toy(virtualSite=True), draft=draft)
    draft = toy(virtualSite=True, site=openmm.TwoParticleAverageSite(0, 1, 0.4, 0.6))
    with pytest.raises(ValueError, match="defined differently"):
        build(target=toy(virtualSite=True), draft=draft)
    build(target=toy(virtualSite=True), draft=toy(virtualSite=True))  # the same definition is fine


def test_default_boxes_must_agree():
    from systems import periodicChain

    draft = periodicChain()
    draft.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) for row in 2 * np.eye(3)))
    with pytest.raises(ValueError, match=r"default periodic box .* differs from the draft's"):
        build(target=periodicChain(), draft=draft)


def test_periodicity():
    target = toy()
    force = openmm.CustomNonbondedForce("0")
    force.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
    for _ in range(3):
        force.addParticle([])
    target.addForce(force)
    with pytest.raises(ValueError, match="periodic boundary conditions"):
        build(target=target)


@pytest.mark.parametrize("name", ["MonteCarloBarostat", "AndersenThermostat"])
@pytest.mark.parametrize("where", ["target", "draft"])
def test_stochastic_forces_refused(name, where):
    system = toy()
    force = openmm.MonteCarloBarostat(1.0, 300.0) if name == "MonteCarloBarostat" else openmm.AndersenThermostat(300.0, 1.0)
    system.addForce(force)
    kw = {where: system}
    # A MonteCarloBarostat is supported (test_barostat.py), but not in a System without periodic boundaries.
    expected = "has a MonteCarloBarostat but no periodic" if name == "MonteCarloBarostat" else "contains a"
    with pytest.raises(ValueError, match=f"{where} System {expected}"):
        build(**kw)


def test_cmmotion_mismatch():
    with pytest.raises(ValueError, match="CMMotionRemover frequency is 1 and the draft's is None"):
        build(target=toy(cmm=1))
    with pytest.raises(ValueError, match="CMMotionRemover frequency is 1 and the draft's is 5"):
        build(target=toy(cmm=1), draft=toy(cmm=5))


@pytest.mark.parametrize("kw, message", [
    (dict(frictionCoeff=0.0), "frictionCoeff must be > 0"),
    (dict(frictionCoeff=-1.0), "frictionCoeff must be > 0"),
    (dict(stepSize=0.0), "stepSize must be > 0"),
    (dict(temperature=-5.0), "temperature must be > 0"),
    (dict(window=0), "window must be an integer between 1 and"),
    (dict(window=10**9), "window must be an integer between 1 and"),
    (dict(window=2.5), "window must be an integer"),
    (dict(scheme="Verlet"), "unknown scheme 'Verlet'"),
    (dict(draftCorrection="magic"), "unknown draftCorrection 'magic'"),
    (dict(correctionLag=0), "correction lag must be an integer >= 1"),
    (dict(seed=-1), "seed must be a non-negative integer"),
    (dict(platform="NoSuchPlatform"), "unknown OpenMM platform 'NoSuchPlatform'"),
])
def test_bad_arguments(kw, message):
    with pytest.raises(ValueError, match=message):
        build(**kw)


def test_wrong_units():
    with pytest.raises(TypeError, match="stepSize has units of nanometer"):
        build(stepSize=2 * unit.nanometer)
    sim = build(stepSize=2 * unit.femtoseconds, temperature=300 * unit.kelvin, frictionCoeff=1 / unit.picosecond)
    assert abs(sim.integrator.getStepSize().value_in_unit(unit.picosecond) - 0.002) < 1e-15


@settings(max_examples=40, deadline=None)
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 0), st.text(max_size=3)),
       name=st.sampled_from(["temperature", "frictionCoeff", "stepSize"]))
def test_fuzzed_physical_arguments_fail_cleanly(value, name):
    """Anything that is not a positive finite number is refused with ValueError/TypeError naming the argument."""
    if isinstance(value, float) and np.isfinite(value) and value > 0:
        return
    with pytest.raises((ValueError, TypeError), match=name):
        build(**{name: value})


def test_nan_target_force_stops_at_last_good_step():
    target = toy()
    trap = openmm.CustomExternalForce("select(step(x-0.2), 0, 0) + 1e3*sqrt(x-0.25)")  # NaN force for x < 0.25
    trap.addParticle(0, [])
    target.addForce(trap)
    sim = build(target=target, draft=toy())
    sim.context.setPositions(startPositions())
    with pytest.raises(RuntimeError, match="target force is not finite at step 0"):
        sim.step(5)
    assert sim.currentStep == 0


def test_nan_draft_force_falls_back_to_exact_serial_steps():
    draft = toy()
    trap = openmm.CustomExternalForce("1e3*sqrt(x-0.25)")  # the draft's force is NaN at particle 0's position
    trap.addParticle(0, [])
    draft.addForce(trap)
    sim = build(draft=draft)
    sim.context.setPositions(startPositions())
    sim.context.setVelocities(startVelocities())
    sim.step(20)
    assert sim.statistics.fallbacks == 20 and sim.currentStep == 20
    state = sim.context.getState(getPositions=True)
    assert np.all(np.isfinite(state.getPositions(asNumpy=True)._value))
