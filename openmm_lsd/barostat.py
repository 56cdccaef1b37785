"""OpenMM's ``MonteCarloBarostat`` and ``MonteCarloAnisotropicBarostat``, performed by the speculative
controller between verified steps.

OpenMM's barostat acts in the integrator's "update context state" phase, before
every step whose count (counted from 1 since the Context was made, whatever
``setStepCount`` says) is a multiple of its frequency (checked on OpenMM 8.6.1: a
Context whose step count is set to 0, 1, 2 or 5 moves at its 3rd and 6th steps with
frequency 3).  Checked against OpenMM 8.6's ``MonteCarloBarostatImpl``: from the
state (x, box) with volume V = a_x b_y c_z,

    dV  = s_V * 2 * (u1 - 1/2)                       s_V: the adaptive volume step
    V'  = V + dV,   l = (V'/V)^(1/3),   box' = l * box
    x'  = x + (l - 1) * c_m   for each atom of molecule m, c_m the unweighted mean
          of its atoms' positions (or x' = l * x atom by atom when the barostat's
          ``scaleMoleculesAsRigid`` is off); velocities are not changed
    w   = E(x', box') - E(x, box) + P dV - N_s kT ln(V'/V)
    reject iff w > 0 and u2 > exp(-w/kT)

with E the potential energy of the integrator's force groups, P and T the Context's
``MonteCarloPressure`` and ``MonteCarloTemperature`` parameters, N_s the number of
molecules (OpenMM's ``Context.getMolecules()`` of the *target* Context, which is
what the serial run would use) or of particles.  After every 10 attempts the step
adapts: s_V /= 1.1 if fewer than a quarter were accepted, s_V = min(1.1 s_V, 0.3 V)
if more than three quarters were, and the counts restart; s_V starts at 1% of the
System's default box volume, as OpenMM sets it when a Context is made.

``MonteCarloAnisotropicBarostat`` (checked against ``MonteCarloAnisotropicBarostatImpl``)
is the same move along one axis: the axis is drawn uniformly among those the
barostat scales, l = V'/V scales that coordinate of the molecule centres and that
component of every box vector, P is that axis's pressure parameter, and each axis
has its own adaptive step and counters.

Here the move before step t + 1 is decided once step t is verified, with u1 and u2
drawn from a generator keyed by (seed, t) (DESIGN.md section 9), on the target's
energies at x_t (returned with the verification of x_t) and at x'_t (one serial
target evaluation).  Moves follow OpenMM's schedule: a counter of the steps taken
since the ``SpeculativeSimulation`` was made (its target Context's creation), so a run
started at any step index moves where the serial run would; the counter is kept in
checkpoints, so a resumed run keeps the uninterrupted run's schedule (OpenMM's own
``loadCheckpoint`` restarts its barostat's counter: checked, 8.6.1).  Rejected, nothing changes and the drafted
steps stand; accepted, the draft restarts from (x'_t, v_t) in the new box.
"""

import dataclasses
import math

import numpy as np
import openmm
from openmm import unit

from ._units import BOLTZMANN

__all__ = ["VolumeMoves", "findBarostat"]

#: Avogadro's number as OpenMM defines it (SimTKOpenMMRealType.h); its k_B N_A = 1.380649e-23 * AVOGADRO / 1000
#: kJ/mol/K is the package's one Boltzmann constant, _units.BOLTZMANN (equal to the last bit)
AVOGADRO = 6.02214076e23
#: bar -> kJ/mol/nm^3, OpenMM's conversion of the pressure parameter
BAR = AVOGADRO * 1e-25
#: the third word of the barostat generator's key: its stream is independent of each step's noise
_STREAM = 0x626172

_OTHER_BAROSTATS = ("MonteCarloMembraneBarostat", "MonteCarloFlexibleBarostat")
SUPPORTED = (openmm.MonteCarloBarostat, openmm.MonteCarloAnisotropicBarostat)


def findBarostat(system, label="target"):
    """The System's ``MonteCarloBarostat`` or ``MonteCarloAnisotropicBarostat``, or None; ValueError for a
    barostat kind that is not supported.

    Raises
    ------
    ValueError
        More than one barostat, another Monte Carlo barostat kind, or a barostat in a
        System without periodic boundary conditions.
    """
    found = []
    for force in system.getForces():
        name = type(force).__name__
        if name in _OTHER_BAROSTATS:
            raise ValueError(
                f"{label} System contains a {name}: speculative dynamics supports OpenMM's MonteCarloBarostat and "
                "MonteCarloAnisotropicBarostat; use one of them, or run this System serially")
        if isinstance(force, SUPPORTED):
            found.append(force)
    if len(found) > 1:
        raise ValueError(f"{label} System contains {len(found)} Monte Carlo barostats; at most one is allowed")
    if found and not system.usesPeriodicBoundaryConditions():
        raise ValueError(f"{label} System has a {type(found[0]).__name__} but no periodic boundary conditions: a "
                         "barostat needs a periodic System (OpenMM refuses it too)")
    return found[0] if found else None


def boxVolume(box):
    """a_x b_y c_z of a (3, 3) box in nm, as OpenMM computes the volume of a (reduced) triclinic box."""
    return float(box[0][0] * box[1][1] * box[2][2])


@dataclasses.dataclass
class Proposal:
    """One attempted volume move: the state it starts from, the trial state and its random numbers."""

    step: int
    axis: int  # the scaled axis (anisotropic), or 0
    positions: np.ndarray
    box: np.ndarray
    volume: float
    newVolume: float
    deltaVolume: float
    uniform: float  # u2, compared with exp(-w/kT)


class VolumeMoves:
    """The state and rules of one ``MonteCarloBarostat`` or ``MonteCarloAnisotropicBarostat`` (module docstring).

    Parameters
    ----------
    barostat : openmm.MonteCarloBarostat or openmm.MonteCarloAnisotropicBarostat
        The target System's barostat: frequency, default pressure(s) and temperature,
        scaled axes, ``scaleMoleculesAsRigid``.
    molecules : sequence of sequences of int
        The target Context's ``getMolecules()``.
    numParticles : int
        Particles in the System.
    defaultVolume : float
        Volume (nm^3) of the System's default box: the volume step starts at 1% of it.
    """

    def __init__(self, barostat, molecules, numParticles, defaultVolume):
        self.frequency = int(barostat.getFrequency())
        self.rigid = bool(barostat.getScaleMoleculesAsRigid())
        self.anisotropic = isinstance(barostat, openmm.MonteCarloAnisotropicBarostat)
        if self.anisotropic:
            #: pressure (bar) along x, y, z, and the axes that are scaled
            self.pressures = list(barostat.getDefaultPressure().value_in_unit(unit.bar))
            self.axes = [i for i, on in enumerate((barostat.getScaleX(), barostat.getScaleY(), barostat.getScaleZ()))
                         if on]
            self.pressureParameters = (barostat.PressureX(), barostat.PressureY(), barostat.PressureZ())
        else:
            self.pressures = [barostat.getDefaultPressure().value_in_unit(unit.bar)]
            self.axes = [0]
            self.pressureParameters = (barostat.Pressure(),)
        self.temperatureParameter = barostat.Temperature()
        self.temperature = barostat.getDefaultTemperature().value_in_unit(unit.kelvin)
        self.numParticles = int(numParticles)
        molecules = [list(m) for m in molecules]
        membership = np.empty(self.numParticles, dtype=np.int64)
        for m, atoms in enumerate(molecules):
            membership[atoms] = m
        self._membership = membership
        self._counts = np.array([len(m) for m in molecules], dtype=np.float64)[:, None]
        self.numScaled = len(molecules) if self.rigid else self.numParticles
        self.initialVolumeScale = 0.01 * float(defaultVolume)
        self.resetAdaptation()
        #: the barostat's step counter minus the step index (:meth:`startCounting`)
        self.phase = 0
        self.attempts = 0
        self.accepts = 0

    @property
    def pressure(self):
        """The pressure (bar) of an isotropic barostat."""
        return self.pressures[0]

    @pressure.setter
    def pressure(self, value):
        self.pressures[0] = value

    def resetAdaptation(self):
        """The volume step(s) and counters as a freshly made OpenMM Context has them (one per axis if anisotropic)."""
        count = 3 if self.anisotropic else 1
        self.volumeScale = [self.initialVolumeScale] * count
        self.numAttempted = [0] * count
        self.numAccepted = [0] * count

    def startCounting(self, step, counter=0):
        """The barostat's step counter is ``counter`` at step index ``step`` (0 for a fresh Context)."""
        self.phase = int(counter) - int(step)

    def due(self, step):
        """Whether a move is attempted between step ``step`` and step ``step + 1``: the step that makes the
        counter of steps taken a multiple of the frequency."""
        return self.frequency > 0 and bool(self.axes) and (step + self.phase + 1) % self.frequency == 0

    def scale(self, positions, factor):
        """Positions with molecule centres (or atoms) scaled about the origin by ``factor`` (a number, or one
        per axis)."""
        factor = np.asarray(factor, dtype=np.float64)
        if not self.rigid:
            return positions * factor
        centres = np.zeros((len(self._counts), 3))
        np.add.at(centres, self._membership, positions)
        centres /= self._counts
        return positions + (factor - 1.0) * centres[self._membership]

    def propose(self, seed, step, positions, box):
        """The trial state of the move before step ``step + 1`` (its random numbers keyed by (seed, step))."""
        rng = np.random.default_rng([seed, step, _STREAM])
        u1, u2, u3 = rng.random(), rng.random(), rng.random()
        axis = self.axes[int(u3 * len(self.axes))] if self.anisotropic else 0
        slot = axis if self.anisotropic else 0
        volume = boxVolume(box)
        deltaVolume = self.volumeScale[slot] * 2.0 * (u1 - 0.5)
        newVolume = volume + deltaVolume
        if self.anisotropic:
            factor = np.ones(3)
            factor[axis] = newVolume / volume
        else:
            factor = np.full(3, (newVolume / volume) ** (1.0 / 3.0))
        # Box vectors are rows: the scaled component of each (OpenMM's box[i][axis] * lengthScale[axis]).
        return Proposal(int(step), axis, self.scale(positions, factor), np.asarray(box) * factor[None, :], volume,
                        newVolume, deltaVolume, u2)

    def work(self, proposal, energy, newEnergy):
        """w = E' - E + P dV - N_s kT ln(V'/V) (kJ/mol; P the scaled axis's pressure if anisotropic) and kT."""
        kT = BOLTZMANN * self.temperature
        logTerm = self.numScaled * kT * math.log(proposal.newVolume / proposal.volume)
        return newEnergy - energy + self.pressures[proposal.axis] * BAR * proposal.deltaVolume - logTerm, kT

    def decide(self, proposal, energy, newEnergy):
        """Accept or reject ``proposal`` from the two target energies (kJ/mol); adapt the volume step."""
        w, kT = self.work(proposal, energy, newEnergy)
        accepted = not (w > 0 and proposal.uniform > math.exp(-w / kT))
        i = proposal.axis
        self.attempts += 1
        self.numAttempted[i] += 1
        if accepted:
            self.accepts += 1
            self.numAccepted[i] += 1
        if self.numAttempted[i] >= 10:
            if self.numAccepted[i] < 0.25 * self.numAttempted[i]:
                self.volumeScale[i] /= 1.1
                self.numAttempted[i] = self.numAccepted[i] = 0
            elif self.numAccepted[i] > 0.75 * self.numAttempted[i]:
                self.volumeScale[i] = min(self.volumeScale[i] * 1.1, proposal.volume * 0.3)
                self.numAttempted[i] = self.numAccepted[i] = 0
        return accepted

    def readParameters(self, context):
        """Pressure(s) and temperature from ``context``'s parameters, as OpenMM's barostat reads them."""
        self.pressures = [context.getParameter(name) for name in self.pressureParameters]
        self.temperature = context.getParameter(self.temperatureParameter)

    _STATE = ("volumeScale", "numAttempted", "numAccepted", "attempts", "accepts", "phase")

    def state(self):
        """What the future depends on (JSON-able), for checkpoints."""
        return {name: getattr(self, name) for name in self._STATE}

    def restore(self, state):
        for name in self._STATE:
            value = state.get(name, 0)  # "phase": 0 in checkpoints written before it was kept
            setattr(self, name, [type(v)(v) for v in value] if isinstance(value, list) else type(value)(value))
