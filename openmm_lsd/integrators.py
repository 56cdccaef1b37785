"""The two Langevin schemes, each written once as step helpers, and the integrators built from them.

Each scheme is one object (:data:`SCHEMES`) that owns its coefficients (the factors of
the target mean and of the noise width) and the helpers that add its lines to a
CustomIntegrator, each tagged with its DESIGN.md line.  Three kinds of integrator are
assembled from the same helpers, as openmmtools builds its integrators from
``_add_*_step`` helpers:

* the *serial* integrator (what the user compares against): OpenMM's own
  ``LangevinMiddleIntegrator`` for ``'LangevinMiddle'`` (reported kinetic energies and
  the tests depend on it); for ``'leapfrog'``, :class:`LeapfrogLangevinIntegrator`,
  which this package ships because OpenMM no longer does;
* the *draft* integrator: the same step on the draft System, with the noise
  given by the controller (per-DOF variable ``xi``, keyed by seed and step) and a
  draft correction ``corr`` added to the force; it records ``xpre`` (the
  unconstrained end position) and ``fd`` (the draft force at the step's start);
* the *replay* integrators: the target step split in two phases on a
  force-free Context that carries the target's constraints, virtual sites and
  CMMotionRemover.  Phase A (``mean``) takes the target force ``ft`` at the
  step's start and leaves the velocity from which the target mean follows;
  phase B (``finish``) takes the coupled ``xpre`` and finishes the step with
  OpenMM's own constraint algorithm, reference positions at the step's start
  (DESIGN.md sections 2, 4, 6).

Notation follows DESIGN.md: a = exp(-gamma dt), b = sqrt(1 - a^2), kT = k_B T.
"""

import math
import re

import openmm
from openmm import unit

from ._units import BOLTZMANN, positive

__all__ = ["LeapfrogLangevinIntegrator"]

_SCHEME_ALIASES = {"langevinmiddle": "LangevinMiddle", "langevin": "LangevinMiddle", "leapfrog": "leapfrog"}


def canonical_scheme(scheme):
    """Map a user-given scheme name to ``'LangevinMiddle'`` or ``'leapfrog'``.

    ``'Langevin'`` is accepted as another name for ``'LangevinMiddle'``: since
    OpenMM 8.5 ``LangevinIntegrator`` is a ``LangevinMiddleIntegrator`` (DESIGN.md section 6).
    """
    if not isinstance(scheme, str) or scheme.lower() not in _SCHEME_ALIASES:
        raise ValueError(f"unknown scheme {scheme!r}: use 'LangevinMiddle' (alias 'Langevin') or 'leapfrog'")
    return _SCHEME_ALIASES[scheme.lower()]


#: The integrators' own variables, written under their DESIGN.md names in this module and given to OpenMM
#: with the prefix ``lsd_`` (``lsd_a``, ``lsd_kT``, ``lsd_xi``...): a Context refuses an integrator variable
#: named like one of its parameters, and users' custom forces use short names (a Sutton-Chen ``a``, say).
#: The shipped :class:`LeapfrogLangevinIntegrator` runs on the user's own Context, so these are public names.
VARIABLES = ("a", "b", "kT", "gamma", "xi", "corr", "fd", "xpre", "x0", "vd", "ft", "xpreSet")
PREFIX = "lsd_"
_RENAME = re.compile(r"\b(" + "|".join(VARIABLES) + r")\b")


def var(name):
    """OpenMM's name of the integrator variable ``name`` (one of :data:`VARIABLES`)."""
    if name not in VARIABLES:
        raise KeyError(name)
    return PREFIX + name


def _named(expression):
    return _RENAME.sub(lambda match: PREFIX + match.group(1), expression)


def _perDof(integrator, variable, expression):
    integrator.addComputePerDof(_named(variable), _named(expression))


def _global(integrator, variable, expression):
    integrator.addComputeGlobal(_named(variable), _named(expression))


#: the draft integrator's global that is 1 once x_pre^d of the current step is computed (read when a step throws)
XPRE_SET = var("xpreSet")


def _addRecordXpre(integrator):
    """x_pre = x, the unconstrained end position the coupling needs (and the flag that it was drawn)."""
    _perDof(integrator, "xpre", "x")
    _global(integrator, "xpreSet", "1")


class _LangevinMiddle:
    """DESIGN.md section 2, line for line (OpenMM's ``LangevinMiddleIntegrator``)."""

    name = "LangevinMiddle"

    @staticmethod
    def sigmaFactor(c):
        """sigma_i = dt/2 b sqrt(kT/m_i), over sqrt(kT/m_i)."""
        return 0.5 * c.dt * c.b

    @staticmethod
    def meanFactor(c):
        """mu = x + dt/2 (1 + a) v1."""
        return 0.5 * c.dt * (1 + c.a)

    @staticmethod
    def _addKick(integrator, force):
        """(1) v1 = Pi_x(v + dt F/m)."""
        _perDof(integrator, "v", f"v + dt*{force}/m")
        integrator.addConstrainVelocities()

    @staticmethod
    def _addConstrain(integrator):
        """(5) x' = P_x(x_pre), reference x; (6) v' = v2 + (x' - x_pre)/dt."""
        integrator.addConstrainPositions()
        _perDof(integrator, "v", "v + (x - xpre)/dt")

    def addDraftStep(self, integrator):
        """(1)-(6) with the force f + corr and the controller's noise xi."""
        self._addKick(integrator, "(f + corr)")
        _perDof(integrator, "x", "x + 0.5*dt*v")  # (2) x_half
        _perDof(integrator, "v", "a*v + b*sqrt(kT/m)*xi")  # (3) v2
        _perDof(integrator, "x", "x + 0.5*dt*v")  # (4) x_pre
        _addRecordXpre(integrator)
        self._addConstrain(integrator)

    def addMean(self, integrator):
        """Phase A: (1) with the target force ``ft``."""
        self._addKick(integrator, "ft")

    def addFinish(self, integrator):
        """Phase B from the coupled x_pre: v2 = 2 (x_pre - x_half)/dt, then (5), (6)."""
        _perDof(integrator, "v", "2*(xpre - (x + 0.5*dt*v))/dt")
        _perDof(integrator, "x", "xpre")
        self._addConstrain(integrator)


class _Leapfrog:
    """DESIGN.md section 6's classic leapfrog Langevin step, line for line."""

    name = "leapfrog"

    @staticmethod
    def sigmaFactor(c):
        """sigma_i = dt b sqrt(kT/m_i), over sqrt(kT/m_i)."""
        return c.dt * c.b

    @staticmethod
    def meanFactor(c):
        """mu = x + dt v'."""
        return c.dt

    @staticmethod
    def _addVelocity(integrator, force, noise=None):
        """v' = a v + (1 - a)/gamma F/m (+ the noise term)."""
        _perDof(integrator, "v", f"a*v + (1-a)/gamma*{force}/m" + (f" + {noise}" if noise else ""))

    @staticmethod
    def _addPositions(integrator, xpre, record=False):
        """x_pre = x + dt v' (or the coupled one); x' = P_x(x_pre), reference x; v_new = (x' - x)/dt."""
        _perDof(integrator, "x0", "x")
        _perDof(integrator, "x", xpre)
        if record:
            _addRecordXpre(integrator)
        integrator.addConstrainPositions()
        _perDof(integrator, "v", "(x - x0)/dt")

    def addSerialStep(self, integrator):
        """The serial step, OpenMM's own Gaussian noise."""
        self._addVelocity(integrator, "f", "sqrt(kT*(1-a*a)/m)*gaussian")
        self._addPositions(integrator, "x + dt*v")

    def addDraftStep(self, integrator):
        """The step with the force f + corr and the controller's noise xi."""
        self._addVelocity(integrator, "(f + corr)", "b*sqrt(kT/m)*xi")
        self._addPositions(integrator, "x + dt*v", record=True)

    def addMean(self, integrator):
        """Phase A: v' without its noise, with the target force ``ft``."""
        self._addVelocity(integrator, "ft")

    def addFinish(self, integrator):
        """Phase B from the coupled x_pre."""
        self._addPositions(integrator, "xpre")


#: the schemes by name; argparse ``choices`` read these names (and the alias 'Langevin')
SCHEMES = {scheme.name: scheme for scheme in (_LangevinMiddle(), _Leapfrog())}
SCHEME_NAMES = tuple(SCHEMES) + ("Langevin",)


class Coefficients:
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
        """sigma_i = sigmaFactor * sqrt(kT / m_i): the width of x_pre given the step's start."""
        return SCHEMES[self.scheme].sigmaFactor(self)

    def meanFactor(self):
        """mu = x + meanFactor * v, v the velocity after the scheme's phase A."""
        return SCHEMES[self.scheme].meanFactor(self)


_GLOBALS = ("a", "b", "kT", "gamma")

def _add_globals(integrator, coeffs):
    for name in _GLOBALS:
        integrator.addGlobalVariable(var(name), getattr(coeffs, name))


def setCoefficients(integrator, coeffs):
    """Give an integrator built by this module the step size and a, b, kT, gamma of ``coeffs``."""
    integrator.setStepSize(coeffs.dt)
    for name in _GLOBALS:
        integrator.setGlobalVariableByName(var(name), getattr(coeffs, name))


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
        coeffs = Coefficients("leapfrog", temperature, frictionCoeff, stepSize)
        _add_globals(self, coeffs)
        self._temperature = temperature
        self._friction = frictionCoeff
        self.addPerDofVariable(var("x0"), 0)
        self.addUpdateContextState()
        SCHEMES["leapfrog"].addSerialStep(self)

    def getTemperature(self):
        """The heat-bath temperature."""
        return self._temperature * unit.kelvin

    def getFriction(self):
        """The friction coefficient."""
        return self._friction / unit.picosecond

    def _stepSize(self):
        return self.getStepSize().value_in_unit(unit.picosecond)

    def _update(self, temperature, frictionCoeff, stepSize):
        coeffs = Coefficients("leapfrog", temperature, frictionCoeff, stepSize)
        openmm.CustomIntegrator.setStepSize(self, stepSize)
        for name in _GLOBALS:
            self.setGlobalVariableByName(var(name), getattr(coeffs, name))
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
        integrator.addPerDofVariable(var(name), 0)
    integrator.addGlobalVariable(XPRE_SET, 0)
    _global(integrator, "xpreSet", "0")
    _perDof(integrator, "v", "vd")
    integrator.addUpdateContextState()
    _perDof(integrator, "fd", "f")
    SCHEMES[coeffs.scheme].addDraftStep(integrator)
    _perDof(integrator, "vd", "v")
    _perDof(integrator, "v", "xpre")
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
    scheme = SCHEMES[coeffs.scheme]
    mean = openmm.CustomIntegrator(coeffs.dt)
    _add_globals(mean, coeffs)
    mean.addPerDofVariable(var("ft"), 0)
    mean.addUpdateContextState()
    scheme.addMean(mean)

    finish = openmm.CustomIntegrator(coeffs.dt)
    _add_globals(finish, coeffs)
    finish.addPerDofVariable(var("xpre"), 0)
    finish.addPerDofVariable(var("x0"), 0)
    scheme.addFinish(finish)

    compound = openmm.CompoundIntegrator()
    compound.addIntegrator(mean)
    compound.addIntegrator(finish)
    return compound
