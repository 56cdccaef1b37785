"""One place where ``openmm.unit`` quantities become plain numbers.

Every public argument that carries a physical dimension accepts either a
``Quantity`` or a plain number in OpenMM's default units (nm, ps, kJ/mol, K,
Da, 1/ps); this module is the only place that knows how.
"""

import math

from openmm import unit


def in_units(value, target_unit, name):
    """Return ``value`` as a float in ``target_unit``.

    Parameters
    ----------
    value : float or openmm.unit.Quantity
        A plain number (taken to be in ``target_unit`` already) or a quantity
        compatible with ``target_unit``.
    target_unit : openmm.unit.Unit
        OpenMM's default unit for this argument.
    name : str
        The argument's name, used in error messages.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        If ``value`` is neither a number nor a quantity, or has incompatible units.
    """
    if unit.is_quantity(value):
        if not value.unit.is_compatible(target_unit):
            raise TypeError(f"{name} has units of {value.unit}, which are not compatible with {target_unit}")
        value = value.value_in_unit(target_unit)
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(f"{name} must be a number in {target_unit} or an openmm.unit.Quantity, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number in {target_unit} or an openmm.unit.Quantity, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def positive(value, target_unit, name):
    """Like :func:`in_units`, but the value must be > 0."""
    value = in_units(value, target_unit, name)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value} {target_unit}")
    return value


KJ_PER_MOL_NM = unit.kilojoule_per_mole / unit.nanometer
BOLTZMANN = (unit.MOLAR_GAS_CONSTANT_R).value_in_unit(unit.kilojoule_per_mole / unit.kelvin)
