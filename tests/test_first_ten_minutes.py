"""What an OpenMM user meets first (issue #13, section 2): each case failed on the code before it.

- a draft from another force field (masses that differ in the last digits) just works;
- custom forces whose global parameters are named like the integrators' variables just work;
- minimizeEnergy() starts with the draft (an xTB target far from a minimum fails its SCF);
- the constructor takes the serial script's integrator;
- reporters are served as OpenMM's Simulation serves them, energies from the verification;
- the openmmtools alanine dipeptide + GFN2-xTB script with OpenMM's four reporters runs and resumes.
"""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import openmm
import pytest
from openmm import app, unit

from openmm_lsd import LeapfrogLangevinIntegrator, SpeculativeSimulation
from openmm_lsd.integrators import VARIABLES

from systems import alanineDipeptidePair, startPositions, startVelocities, topology, toy, toyPair

REFERENCE = openmm.Platform.getPlatformByName("Reference")


def positionsOf(sim):
    return sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)


# ---- masses ------------------------------------------------------------------------------------------

def test_draft_masses_that_differ_by_rounding_are_taken_from_the_target_silently(toySimulation):
    target, draft = toyPair()
    draft.setParticleMass(0, 12.0 * (1 + 5e-5))  # 1.008 against 1.007947 Da: a force field's rounding
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sim = toySimulation(target, draft)
    assert draft.getParticleMass(0).value_in_unit(unit.dalton) == 12.0 * (1 + 5e-5)  # the user's System is kept
    assert sim.draftSystem.getParticleMass(0).value_in_unit(unit.dalton) == 12.0
    sim.step(30)
    same = toySimulation(*toyPair())
    same.step(30)
    np.testing.assert_array_equal(positionsOf(sim), positionsOf(same))  # as if the draft had the target's masses


def test_hydrogen_mass_repartitioning_in_one_system_only_is_named():
    from openmmtools import testsystems

    ala = testsystems.AlanineDipeptideVacuum(constraints=app.HBonds)
    heavy = openmm.XmlSerializer.clone(ala.system)  # the same force field, with 2 Da moved onto each hydrogen
    for a, b in ala.topology.bonds():
        hydrogen, other = (a, b) if a.element == app.element.hydrogen else (b, a)
        if hydrogen.element == app.element.hydrogen and other.element != app.element.hydrogen:
            heavy.setParticleMass(hydrogen.index, heavy.getParticleMass(hydrogen.index) + 2 * unit.amu)
            heavy.setParticleMass(other.index, heavy.getParticleMass(other.index) - 2 * unit.amu)
    with pytest.warns(UserWarning, match="hydrogen mass repartitioning"):
        SpeculativeSimulation(ala.topology, ala.system, heavy, 300, 1.0, 0.002, platform="Reference", seed=1)


# ---- names -------------------------------------------------------------------------------------------

def withParameters(system, names):
    """``system`` plus a CustomExternalForce whose global parameters carry ``names`` (all zero: no force)."""
    force = openmm.CustomExternalForce(" + ".join(f"{name}*x" for name in names))
    for name in names:
        force.addGlobalParameter(name, 0.0)
    for i in range(system.getNumParticles()):
        force.addParticle(i, [])
    system.addForce(force)
    return system


@pytest.mark.parametrize("scheme", ["LangevinMiddle", "leapfrog"])
def test_custom_forces_may_use_every_name_the_integrators_use(toySimulation, scheme):
    """Every integrator variable's own name (a, b, kT, gamma, xi, corr, ...) as a global parameter of the draft
    and of the target: OpenMM would refuse "a variable with the same name as a Context parameter"."""
    target, draft = toyPair()
    sim = toySimulation(withParameters(target, VARIABLES), withParameters(draft, VARIABLES), scheme=scheme)
    sim.step(10)
    plain = toySimulation(*toyPair(), scheme=scheme)
    plain.step(10)
    np.testing.assert_array_equal(positionsOf(sim), positionsOf(plain))
    serial = openmm.Context(withParameters(toy(), VARIABLES), LeapfrogLangevinIntegrator(300, 5.0, 0.004), REFERENCE)
    serial.setPositions(startPositions())
    serial.getIntegrator().step(2)  # the shipped serial integrator on the user's own Context


# ---- minimizeEnergy ----------------------------------------------------------------------------------

def failingFarFromTheMinimum(limit):
    """A PythonForce adding nothing that raises, like an SCF that does not converge, where any particle is
    farther than ``limit`` nm from the toy wells' centres."""
    centres = np.array([[0.15 * i, 0.0, 0.0] for i in range(3)])

    def compute(state):
        x = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        if np.abs(x - centres).max() > limit:
            raise RuntimeError("SCF not converged in 250 cycles")
        return 0.0, np.zeros((3, 3))

    return openmm.PythonForce(compute)


def minimizing(limit):
    target, draft = toy(bond=0.0), toy(bond=0.0, shift=0.002)
    target.addForce(failingFarFromTheMinimum(limit))
    sim = SpeculativeSimulation(topology(3), target, draft, 300, 5.0, 0.004, platform="Reference", seed=1)
    sim.context.setPositions(np.full((3, 3), 1.0))  # far from the wells, as openmmtools' positions are for xTB
    return sim


CENTRES = np.array([[0.15 * i, 0.0, 0.0] for i in range(3)])


def test_minimize_energy_starts_with_the_draft():
    """A target that fails more than 0.7 nm from its minimum: alone, OpenMM's minimizer fails at the start;
    from the draft's minimum (0.002 nm off) it finishes on the target (its first trial step reaches 0.63 nm)."""
    sim = minimizing(0.7)
    with pytest.raises(openmm.OpenMMException, match="SCF not converged"):
        openmm.LocalEnergyMinimizer.minimize(sim.context, 1.0, 0)  # the target alone, from far away
    sim = minimizing(0.7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "minimizing the target failed"
        sim.minimizeEnergy(tolerance=1.0)
    assert np.abs(positionsOf(sim) - CENTRES).max() < 1e-3  # the target's minimum, not the draft's (0.002 off)


def test_minimize_energy_keeps_the_draft_minimum_where_the_target_still_fails():
    sim = minimizing(0.05)
    with pytest.warns(RuntimeWarning, match="minimizing the target failed .*SCF not converged"):
        sim.minimizeEnergy(tolerance=1.0)
    assert abs(np.abs(positionsOf(sim) - CENTRES).max() - 0.002) < 1e-4  # the draft's minimum
    sim.step(5)  # and the run goes on from there


# ---- the integrator ----------------------------------------------------------------------------------

def test_the_serial_scripts_integrator_is_taken_as_it_is():
    target, draft = toyPair()
    integrator = openmm.LangevinMiddleIntegrator(300, 5.0, 0.004)
    integrator.setRandomNumberSeed(7)
    integrator.setConstraintTolerance(1e-7)
    given = SpeculativeSimulation(topology(3), target, draft, integrator, window=4, platform="Reference")
    assert given.integrator is integrator and given.seed == 7
    spelled = SpeculativeSimulation(topology(3), *toyPair(), 300, 5.0, 0.004, window=4, platform="Reference", seed=7)
    for sim in (given, spelled):
        sim.context.setPositions(startPositions())
        sim.context.setVelocities(startVelocities())
        sim.step(15)
    np.testing.assert_array_equal(positionsOf(given), positionsOf(spelled))
    integrator.setTemperature(400)  # as on a Simulation: followed from the next step
    given.step(1)
    assert given._coefficients.temperature == 400
    picked = SpeculativeSimulation(topology(3), *toyPair(), openmm.LangevinIntegrator(300, 1, 0.002),
                                   platform="Reference")
    assert picked.seed > 0 and picked.scheme == "LangevinMiddle"  # OpenMM's seed 0: one is picked
    leapfrog = SpeculativeSimulation(topology(3), *toyPair(), LeapfrogLangevinIntegrator(300, 1, 0.002), seed=3,
                                     platform="Reference")
    assert leapfrog.scheme == "leapfrog"


def test_other_integrators_and_bound_ones_are_refused_by_name():
    with pytest.raises(ValueError, match="not a VerletIntegrator"):
        SpeculativeSimulation(topology(3), *toyPair(), openmm.VerletIntegrator(0.001))
    bound = openmm.LangevinMiddleIntegrator(300, 1, 0.002)
    openmm.Context(toy(), bound, REFERENCE)
    with pytest.raises(ValueError, match="already bound to a Context"):
        SpeculativeSimulation(topology(3), *toyPair(), bound)
    with pytest.raises(ValueError, match="disagrees with the integrator"):
        SpeculativeSimulation(topology(3), *toyPair(), openmm.LangevinMiddleIntegrator(300, 1, 0.002),
                              scheme="leapfrog")
    with pytest.raises(TypeError, match="temperature, frictionCoeff and stepSize"):
        SpeculativeSimulation(topology(3), *toyPair(), 300)


# ---- reporters ---------------------------------------------------------------------------------------

class CountingReporter:
    """Records every State it is given (and how often each State object is shared)."""

    def __init__(self, interval, energy=True, periodic=None):
        self.interval, self.energy, self.periodic = interval, energy, periodic
        self.states = []

    def describeNextReport(self, simulation):
        steps = self.interval - simulation.currentStep % self.interval
        include = ["positions", "energy"] if self.energy else ["positions"]
        return {"steps": steps, "periodic": self.periodic, "include": include}

    def report(self, simulation, state):
        self.states.append(state)


def countingTarget():
    target = toy()
    calls = []

    def count(state):
        calls.append(1)
        return 0.0, np.zeros((3, 3))

    target.addForce(openmm.PythonForce(count))
    return target, calls


def test_energy_reports_cost_no_target_call_and_are_the_targets_energy(toySimulation):
    target, calls = countingTarget()
    quiet = toySimulation(target, toyPair()[1])
    quiet.step(40)
    without = len(calls)
    target, calls = countingTarget()
    sim = toySimulation(target, toyPair()[1])
    reporters = [CountingReporter(5), CountingReporter(5), CountingReporter(10, energy=False)]
    sim.reporters.extend(reporters)
    sim.step(40)
    np.testing.assert_array_equal(positionsOf(sim), positionsOf(quiet))  # reporting does not change the run
    # Every energy came from a verification: the one more target call is x_40's, which the last report needs
    # and the run did not (a serial energy per report would have made 8 more).
    assert len(calls) == without + 1
    assert len(reporters[0].states) == 8 and len(reporters[2].states) == 4
    assert all(a is b for a, b in zip(reporters[0].states, reporters[1].states))  # one State for all due
    check = openmm.Context(toy(), openmm.VerletIntegrator(0.001), REFERENCE)
    for state in reporters[0].states:
        check.setPositions(state.getPositions())
        assert state.getPotentialEnergy() == check.getState(getEnergy=True).getPotentialEnergy()
        assert state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole) > 0


def test_wrapped_and_unwrapped_reporters_get_one_state_each(toySimulation):
    sim = toySimulation()
    wrapped, unwrapped, again = CountingReporter(4, periodic=True), CountingReporter(4, periodic=False), \
        CountingReporter(4, periodic=False)
    sim.reporters.extend([wrapped, unwrapped, again])
    sim.step(8)
    assert len(wrapped.states) == len(unwrapped.states) == 2
    assert all(a is b for a, b in zip(unwrapped.states, again.states))
    assert not any(a is b for a, b in zip(wrapped.states, unwrapped.states))


# ---- the whole first script ------------------------------------------------------------------------

EXAMPLE = Path(__file__).parent.parent / "examples" / "openmm_script_alanine_xtb.py"


def runExample(folder, steps, resume=None):
    """examples/openmm_script_alanine_xtb.py, the script of issue #13 (openmmtools' alanine dipeptide as the draft,
    GFN2-xTB for its topology made rigid with constrainLike, minimizeEnergy, OpenMM's four reporters), with
    one OpenMP thread: tblite's forces then repeat to the last bit."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-W", "error::RuntimeWarning", str(EXAMPLE), str(steps), str(folder)]
    run = subprocess.run(command + ([resume] if resume else []), capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    return openmm.XmlSerializer.deserialize((folder / "final.xml").read_text())


@pytest.mark.slow
def test_alanine_dipeptide_script_with_openmm_reporters_runs_and_its_checkpoint_resumes(tmp_path):
    pytest.importorskip("tblite", reason="the GFN2-xTB target needs tblite (pip install 'openmm-lsd[xtb]')")
    whole = runExample(tmp_path / "whole", 20)  # -W error: the target's minimization did not fail either
    lines = (tmp_path / "whole" / "log.csv").read_text().splitlines()
    assert len(lines) == 5 and all(np.isfinite(float(v)) for line in lines[1:] for v in line.split(","))
    assert (tmp_path / "whole" / "trajectory.dcd").stat().st_size > 0
    assert (tmp_path / "whole" / "trajectory.pdb").exists()
    runExample(tmp_path / "first", 10)  # its CheckpointReporter saved the LSD checkpoint at step 10
    resumed = runExample(tmp_path / "second", 10, resume=str(tmp_path / "first" / "checkpoint.lsd"))
    assert resumed.getStepCount() == whole.getStepCount() == 20
    for kind in ("getPositions", "getVelocities"):
        np.testing.assert_array_equal(getattr(resumed, kind)(asNumpy=True)._value, getattr(whole, kind)(asNumpy=True)._value)


def test_energy_reports_leave_the_accepted_history_alone():
    """An energy report whose x_t the in-process verifier evaluates after the chunk was written back must not
    read as a state the user set. Alanine dipeptide with rigid H bonds, where the drafted x_t^d and the
    accepted x_t once differed in the last digits (tests/test_engine.py): every report restarted the accepted
    history, and a learned fit with it (found with --correction learned on ML/MM: the fit never had a frame).
    The run with reporters equals the run without, and its history never restarts."""
    top, target, draft, positions = alanineDipeptidePair()

    def make():
        sim = SpeculativeSimulation(top, target, draft, 300, 10.0, 0.001, window=4, seed=1, platform="Reference")
        sim.context.setPositions(positions)
        sim.context.setVelocitiesToTemperature(300, 5)
        return sim

    quiet = make()
    quiet.step(20)
    sim = make()
    sim.reporters.append(CountingReporter(5))
    sim.step(20)
    assert len(sim.reporters[0].states) == 4
    assert sim._controller.frontier.origin == 0  # one accepted history from the start
    np.testing.assert_array_equal(positionsOf(sim), positionsOf(quiet))
