"""The two Langevin schemes, written out line for line as CustomIntegrators.

Each scheme appears three times, and all three follow the same step list:

* the *serial* integrator (what the user compares against): OpenMM's own
  ``LangevinMiddleIntegrator`` for ``'LangevinMiddle'``; for ``'leapfrog'``,
  :class:`LeapfrogLangevinIntegrator`, which this package ships because OpenMM no
  longer does;
* the *draft* integrator: the same step on the draft System, with the noise
  given by the controller (per-DOF variable ``xi``, keyed by seed and step) and a
  draft correction ``corr`` added to the force; it records ``xpre`` (the
  unconstrained end position) and ``fd`` (the draft force at the step's start);
* the *replay* integrators: the target step split in two phases on a
  force-free Context that carries the target's constraints, virtual sites and
  CMMotionRemover.  Phase A (``mean``) takes the target force ``ft`` at the
  step's start and leaves the velocity from which the target mean follows;
  phase B (``finish``) takes
  the coupled ``xpre`` and finishes the step with OpenMM's own constraint
  algorithm, reference positions at the step's start (DESIGN.md sections 2, 4, 6).

Notation follows DESIGN.md: a = exp(-gamma dt), b = sqrt(1 - a^2), kT = k_B T.
"""

import math

import openmm
from openmm import unit

from ._units import BOLTZMANN, positive

__all__ = ["LeapfrogLangevinIntegrator"]

SCHEMES = ("LangevinMiddle", "leapfrog")
_SCHEME_ALIASES = {"langevinmiddle": "LangevinMiddle", "langevin": "LangevinMiddle", "leapfrog": "leapfrog"}


def canonical_scheme(scheme):
    """Map a user-given scheme name to ``'LangevinMiddle'`` or ``'leapfrog'``.

    ``'Langevin'`` is accepted as another name for ``'LangevinMiddle'``: since
    OpenMM 8.5 ``LangevinIntegrator`` is a ``LangevinMiddleIntegrator`` (DESIGN.md section 6).
    """
    if not isinstance(scheme, str) or scheme.lower() not in _SCHEME_ALIASES:
        raise ValueError(f"unknown scheme {scheme!r}: use 'LangevinMiddle' (alias 'Langevin') or 'leapfrog'")
    return _SCHEME_ALIASES[scheme.lower()]


class _Coefficients:
    """a, b, kT and the per-DOF noise width of a scheme, in OpenMM's default units."""

    def __init__(self, scheme, temperature, frictionCoeff, stepSize):
        self.scheme = scheme
        self.temperature = temperature
        self.gamma = frictionCoeff
        self.dt = stepSize
        self.kT = BOLTZMANN * temperature
        self.a = math.exp(-frictionCoeff * stepSize)
        self.b = math.sqrt(1.0 - self.a * self.a)

    def sigmaFactor(self):
        """sigma_i = sigmaFactor * sqrt(kT / m_i): the width of x_pre given the step's start.

        LangevinMiddle: sigma = dt/2 * b * sqrt(kT/m) (section 2);
        leapfrog:       sigma = dt * b * sqrt(kT/m)   (section 6).
        """
        if self.scheme == "LangevinMiddle":
            return 0.5 * self.dt * self.b
        return self.dt * self.b


_GLOBALS = ("a", "b", "kT", "gamma")

#: the draft integrator's global that is 1 once x_pre^d of the current step is computed (read when a step throws)
XPRE_SET = "xpreSet"


def _add_globals(integrator, coeffs):
    for name in _GLOBALS:
        integrator.addGlobalVariable(name, getattr(coeffs, name))


def setCoefficients(integrator, coeffs):
    """Give an integrator built by this module the step size and a, b, kT, gamma of ``coeffs``."""
    integrator.setStepSize(coeffs.dt)
    for name in _GLOBALS:
        integrator.setGlobalVariableByName(name, getattr(coeffs, name))


class LeapfrogLangevinIntegrator(openmm.CustomIntegrator):
    """The classic leapfrog Langevin integrator (OpenMM's ``LangevinIntegrator`` before 8.5).

    One step, per degree of freedom with mass m > 0 (DESIGN.md section 6)::

        (0) update context state (CMMotionRemover)
        v'     = a v + (1 - a)/gamma F/m + sqrt(kT (1 - a^2)/m) xi
        x_pre  = x + dt v'
        x'     = P_x(x_pre)            position constraints, reference x
        v_new  = (x' - x)/dt

    with a = exp(-gamma dt) and xi ~ N(0, 1).  ``SpeculativeSimulation`` with
    ``scheme='leapfrog'`` samples exactly the law of this integrator.

    Parameters
    ----------
    temperature : float or openmm.unit.Quantity
        Heat-bath temperature (K).
    frictionCoeff : float or openmm.unit.Quantity
        Friction coefficient gamma (1/ps), > 0.
    stepSize : float or openmm.unit.Quantity
        Time step (ps).

    Examples
    --------
    >>> integrator = LeapfrogLangevinIntegrator(300*unit.kelvin, 1/unit.picosecond, 0.002*unit.picoseconds)
    """

    def __init__(self, temperature, frictionCoeff, stepSize):
        temperature = positive(temperature, unit.kelvin, "temperature")
        frictionCoeff = positive(frictionCoeff, unit.picosecond**-1, "frictionCoeff")
        stepSize = positive(stepSize, unit.picosecond, "stepSize")
        super().__init__(stepSize)
        coeffs = _Coefficients("leapfrog", temperature, frictionCoeff, stepSize)
        _add_globals(self, coeffs)
        self._temperature = temperature
        self._friction = frictionCoeff
        self.addPerDofVariable("x0", 0)
        self.addUpdateContextState()
        self.addComputePerDof("v", "a*v + (1-a)/gamma*f/m + sqrt(kT*(1-a*a)/m)*gaussian")
        self.addComputePerDof("x0", "x")
        self.addComputePerDof("x", "x + dt*v")
        self.addConstrainPositions()
        self.addComputePerDof("v", "(x - x0)/dt")

    def getTemperature(self):
        """The heat-bath temperature."""
        return self._temperature * unit.kelvin

    def getFriction(self):
        """The friction coefficient."""
        return self._friction / unit.picosecond

    def _stepSize(self):
        return self.getStepSize().value_in_unit(unit.picosecond)

    def _update(self, temperature, frictionCoeff, stepSize):
        coeffs = _Coefficients("leapfrog", temperature, frictionCoeff, stepSize)
        openmm.CustomIntegrator.setStepSize(self, stepSize)
        for name in _GLOBALS:
            self.setGlobalVariableByName(name, getattr(coeffs, name))
        self._temperature, self._friction = temperature, frictionCoeff

    def setTemperature(self, temperature):
        """Set the heat-bath temperature (K), as ``LangevinMiddleIntegrator.setTemperature``."""
        self._update(positive(temperature, unit.kelvin, "temperature"), self._friction, self._stepSize())

    def setFriction(self, frictionCoeff):
        """Set the friction coefficient (1/ps), as ``LangevinMiddleIntegrator.setFriction``."""
        self._update(self._temperature, positive(frictionCoeff, unit.picosecond**-1, "frictionCoeff"),
                     self._stepSize())

    def setStepSize(self, stepSize):
        """Set the time step (ps); a = exp(-gamma dt) and b follow."""
        self._update(self._temperature, self._friction, positive(stepSize, unit.picosecond, "stepSize"))


def serialIntegrator(coeffs):
    """The serial integrator whose law a run with these coefficients reproduces."""
    if coeffs.scheme == "LangevinMiddle":
        return openmm.LangevinMiddleIntegrator(coeffs.temperature, coeffs.gamma, coeffs.dt)
    return LeapfrogLangevinIntegrator(coeffs.temperature, coeffs.gamma, coeffs.dt)


def draftIntegrator(coeffs):
    """The draft integrator: the scheme's step with controller noise ``xi`` and force ``f + corr``.

    Records per step ``fd`` (draft force at the start position, for the offset
    correction).  The draft's own velocity lives in the per-DOF variable ``vd``
    between steps, and the Context's velocities hold the unconstrained end
    position x_pre^d instead: one ``getState(positions, velocities)`` then
    returns both x_j and x_pre^d, where reading a per-DOF variable through
    OpenMM's Python API costs ~1 ms per 1,000 atoms.  The step starts by
    restoring ``v = vd`` before the CMMotionRemover acts, so the dynamics is the
    scheme's.  The draft mean is mu_d = xpre - sigma * xi.
    """
    integrator = openmm.CustomIntegrator(coeffs.dt)
    _add_globals(integrator, coeffs)
    for name in ("xi", "corr", "fd", "xpre", "x0", "vd"):
        integrator.addPerDofVariable(name, 0)
    integrator.addGlobalVariable(XPRE_SET, 0)
    integrator.addComputeGlobal(XPRE_SET, "0")
    integrator.addComputePerDof("v", "vd")
    integrator.addUpdateContextState()
    integrator.addComputePerDof("fd", "f")
    if coeffs.scheme == "LangevinMiddle":
        # (1) v1 = Pi(v + dt F/m); (2) x_half; (3) v2 = a v1 + b sqrt(kT/m) xi; (4) x_pre; (5) P; (6) v'.
        integrator.addComputePerDof("v", "v + dt*(f + corr)/m")
        integrator.addConstrainVelocities()
        integrator.addComputePerDof("x", "x + 0.5*dt*v")
        integrator.addComputePerDof("v", "a*v + b*sqrt(kT/m)*xi")
        integrator.addComputePerDof("x", "x + 0.5*dt*v")
        integrator.addComputePerDof("xpre", "x")
        integrator.addComputeGlobal(XPRE_SET, "1")
        integrator.addConstrainPositions()
        integrator.addComputePerDof("v", "v + (x - xpre)/dt")
    else:
        integrator.addComputePerDof("v", "a*v + (1-a)/gamma*(f + corr)/m + b*sqrt(kT/m)*xi")
        integrator.addComputePerDof("x0", "x")
        integrator.addComputePerDof("x", "x + dt*v")
        integrator.addComputePerDof("xpre", "x")
        integrator.addComputeGlobal(XPRE_SET, "1")
        integrator.addConstrainPositions()
        integrator.addComputePerDof("v", "(x - x0)/dt")
    integrator.addComputePerDof("vd", "v")
    integrator.addComputePerDof("v", "xpre")
    return integrator


def replayIntegrator(coeffs):
    """The target step in two phases, as a CompoundIntegrator (0: mean, 1: finish).

    Phase A (integrator 0), from the accepted state (x, v) with the target force
    ``ft`` at x: applies CMMotionRemover (update context state), then
    LangevinMiddle: v1 = Pi_x(v + dt ft/m); leapfrog: v' = a v + (1 - a)/gamma ft/m.
    The Context's velocities are left at v1 (resp. v'), from which the controller
    reads the target mean mu = x + dt/2 (1 + a) v1 (resp. x + dt v') with one getState.

    Phase B (integrator 1), given the coupled ``xpre``: LangevinMiddle:
    v2 = 2 (xpre - x_half)/dt, x = P_x(xpre), v = v2 + (x - xpre)/dt;
    leapfrog: x = P_x(xpre), v = (x - x_start)/dt.
    """
    mean = openmm.CustomIntegrator(coeffs.dt)
    _add_globals(mean, coeffs)
    mean.addPerDofVariable("ft", 0)
    mean.addUpdateContextState()
    if coeffs.scheme == "LangevinMiddle":
        mean.addComputePerDof("v", "v + dt*ft/m")
        mean.addConstrainVelocities()
    else:
        mean.addComputePerDof("v", "a*v + (1-a)/gamma*ft/m")

    finish = openmm.CustomIntegrator(coeffs.dt)
    _add_globals(finish, coeffs)
    finish.addPerDofVariable("xpre", 0)
    finish.addPerDofVariable("x0", 0)
    if coeffs.scheme == "LangevinMiddle":
        finish.addComputePerDof("v", "2*(xpre - (x + 0.5*dt*v))/dt")
        finish.addComputePerDof("x", "xpre")
        finish.addConstrainPositions()
        finish.addComputePerDof("v", "v + (x - xpre)/dt")
    else:
        finish.addComputePerDof("x0", "x")
        finish.addComputePerDof("x", "xpre")
        finish.addConstrainPositions()
        finish.addComputePerDof("v", "(x - x0)/dt")

    compound = openmm.CompoundIntegrator()
    compound.addIntegrator(mean)
    compound.addIntegrator(finish)
    return compound
