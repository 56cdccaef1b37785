"""A latency-emulating target: real forces, and a fixed wall time per call that uses no CPU.

On a 2-core machine, parallel scaling to 8 or 16 verifiers can only be measured
with a target whose cost is waiting, not computing, as a GPU model call is from
the CPU's point of view.  :class:`LatencyTarget` wraps a real OpenMM System (its
forces are computed exactly, on the Reference platform, single-threaded) and
holds every call until ``latency`` seconds have passed since it started,
sleeping, so that other processes get the CPU meanwhile.
"""

import time

import numpy as np
import openmm
from openmm import unit

__all__ = ["LatencyTarget", "latencySystem"]


class LatencyTarget:
    """The callable of a ``PythonForce``: forces of ``system``, each call held for ``latency`` seconds.

    Picklable (the System travels as XML), so a target System built with it
    serializes and can be shipped to verifier ranks.

    Parameters
    ----------
    system : openmm.System
        The real potential.  Its CMMotionRemover, if any, is dropped here (the
        System that holds this force carries its own).
    latency : float
        Seconds each call lasts at least (0: no added wait).
    """

    def __init__(self, system, latency):
        self.xml = openmm.XmlSerializer.serialize(system)
        self.latency = float(latency)
        self._context = None
        self.calls = 0

    def __getstate__(self):
        return {"xml": self.xml, "latency": self.latency}

    def __setstate__(self, state):
        self.__init__(openmm.XmlSerializer.deserialize(state["xml"]), state["latency"])

    def _ensureContext(self):
        if self._context is None:
            system = openmm.XmlSerializer.deserialize(self.xml)
            for i in reversed(range(system.getNumForces())):
                if isinstance(system.getForce(i), openmm.CMMotionRemover):
                    system.removeForce(i)
            self._context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                                           openmm.Platform.getPlatformByName("Reference"))
        return self._context

    def __call__(self, state):
        start = time.perf_counter()
        context = self._ensureContext()
        context.setPositions(state.getPositions(asNumpy=True))
        if context.getSystem().usesPeriodicBoundaryConditions():
            context.setPeriodicBoxVectors(*state.getPeriodicBoxVectors())
        result = context.getState(getForces=True, getEnergy=True)
        energy = result.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
        forces = np.asarray(result.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
        self.calls += 1
        remaining = self.latency - (time.perf_counter() - start)
        if remaining > 0:
            time.sleep(remaining)
        return energy, forces


def latencySystem(system, latency):
    """A copy of ``system``'s particles, constraints, virtual sites and CMMotionRemover whose only force is a
    ``PythonForce`` running :class:`LatencyTarget` (``system``, ``latency`` seconds)."""
    target = openmm.System()
    for i in range(system.getNumParticles()):
        target.addParticle(system.getParticleMass(i))
    for k in range(system.getNumConstraints()):
        target.addConstraint(*system.getConstraintParameters(k))
    target.setDefaultPeriodicBoxVectors(*system.getDefaultPeriodicBoxVectors())
    for i in range(system.getNumParticles()):
        if system.isVirtualSite(i):
            raise ValueError("latencySystem() does not copy virtual sites")
    force = openmm.PythonForce(LatencyTarget(system, latency))
    force.setUsesPeriodicBoundaryConditions(system.usesPeriodicBoundaryConditions())
    target.addForce(force)
    for f in system.getForces():
        if isinstance(f, openmm.CMMotionRemover):
            target.addForce(openmm.CMMotionRemover(f.getFrequency()))
    return target


class AddedLatency:
    """A picklable ``PythonForce`` callable that waits ``seconds`` (sleeping, no CPU) and adds no force.

    Added to a real target System (``addLatency``) it makes every target call cost that
    much more, as a GPU-class model would, in the serial baseline and on every rank alike.
    """

    def __init__(self, seconds, numParticles):
        self.seconds = float(seconds)
        self.numParticles = int(numParticles)

    def __call__(self, state):
        time.sleep(self.seconds)
        return 0.0, np.zeros((self.numParticles, 3))


def addLatency(system, seconds):
    """Add :class:`AddedLatency` to ``system`` (in place; returned)."""
    if seconds > 0:
        force = openmm.PythonForce(AddedLatency(seconds, system.getNumParticles()))
        force.setUsesPeriodicBoundaryConditions(system.usesPeriodicBoundaryConditions())
        system.addForce(force)
    return system
