"""Checks that a draft System can stand in for a target System, and the replay System.

Everything here runs before any Context is created, so bad input is refused
before work starts (DESIGN.md section 8).
"""

import math
import xml.etree.ElementTree as ElementTree

import openmm

from .barostat import SUPPORTED, findBarostat

# Forces whose action on the state is random and that the controller does not perform
# itself (it performs the Monte Carlo barostats' moves, barostat.py): refused.
_STOCHASTIC_FORCES = ("AndersenThermostat",)


def _force_names(system):
    return [type(system.getForce(i)).__name__ for i in range(system.getNumForces())]


def cmMotionFrequency(system):
    """Frequency of the System's CMMotionRemover, or None.  More than one is refused."""
    freqs = [f.getFrequency() for f in system.getForces() if isinstance(f, openmm.CMMotionRemover)]
    if len(freqs) > 1:
        raise ValueError(f"System has {len(freqs)} CMMotionRemovers; at most one is supported")
    return freqs[0] if freqs else None


def _constraints(system):
    out = {}
    for k in range(system.getNumConstraints()):
        i, j, d = system.getConstraintParameters(k)
        out[(min(i, j), max(i, j))] = d.value_in_unit(openmm.unit.nanometer) if openmm.unit.is_quantity(d) else d
    return out


def _plain(value):
    """Numbers (and nested tuples of numbers) of a virtual-site accessor's result, units stripped."""
    if openmm.unit.is_quantity(value):  # only LocalCoordinatesSite's local position, in nm
        value = value.value_in_unit(openmm.unit.nanometer)
    if isinstance(value, (list, tuple, openmm.Vec3)):
        return tuple(_plain(v) for v in value)
    return float(value)


def siteDefinition(site):
    """A virtual site's definition as a comparable tuple: its kind, parent particles and weights/geometry."""
    n = site.getNumParticles()
    parts = [type(site).__name__, tuple(site.getParticle(i) for i in range(n))]
    if hasattr(site, "getWeight"):
        parts.append(tuple(site.getWeight(i) for i in range(n)))
    for name in ("getWeight12", "getWeight13", "getWeightCross", "getOriginWeights", "getXWeights",
                 "getYWeights", "getLocalPosition", "getRotationMatrix", "getOffsetVector", "getUseBoxVectors"):
        if hasattr(site, name):
            parts.append(_plain(getattr(site, name)()))
    return tuple(parts)


def _sameNumbers(a, b):
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_sameNumbers(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
    return a == b


def _box(system):
    return [[c for c in v.value_in_unit(openmm.unit.nanometer)] for v in system.getDefaultPeriodicBoxVectors()]


def checkSystems(target, draft):
    """Raise ValueError naming the first way in which ``draft`` cannot draft for ``target``.

    Checked: particle count, masses, constraints, virtual sites (kind, parent particles,
    weights: sites are kinematics, part of the target's law), periodicity and default
    box, CMMotionRemover frequency, stochastic forces in either System.  A
    Monte Carlo barostat belongs to the target (the controller makes its moves); one
    in the draft is ignored, and allowed only where the target has one too.
    """
    for label, system in (("target", target), ("draft", draft)):
        if not isinstance(system, openmm.System):
            raise TypeError(f"{label} System must be an openmm.System, got {type(system).__name__}")
        for name in _force_names(system):
            if name in _STOCHASTIC_FORCES:
                raise ValueError(
                    f"{label} System contains a {name}: it changes the law of the run and is not supported by "
                    "speculative dynamics; remove it"
                )
    targetBarostat = findBarostat(target)
    if findBarostat(draft, "draft") is not None and targetBarostat is None:
        raise ValueError("the draft System has a Monte Carlo barostat and the target has none: the barostat decides "
                         "the law of the run, so it belongs in the target System (a draft's barostat is ignored)")
    n = target.getNumParticles()
    if draft.getNumParticles() != n:
        raise ValueError(f"draft System has {draft.getNumParticles()} particles, target has {n}")
    if n == 0:
        raise ValueError("target System has no particles")
    for i in range(n):
        mt = target.getParticleMass(i).value_in_unit(openmm.unit.dalton)
        md = draft.getParticleMass(i).value_in_unit(openmm.unit.dalton)
        if not math.isclose(mt, md, rel_tol=1e-12, abs_tol=0.0):
            raise ValueError(f"particle {i} has mass {md} Da in the draft System and {mt} Da in the target "
                             "(withTargetMasses gives the draft the target's)")
        vt, vd = target.isVirtualSite(i), draft.isVirtualSite(i)
        if vt != vd:
            which = "target" if vt else "draft"
            raise ValueError(f"particle {i} is a virtual site in the {which} System only")
        if vt:
            st, sd = siteDefinition(target.getVirtualSite(i)), siteDefinition(draft.getVirtualSite(i))
            if not _sameNumbers(st, sd):
                raise ValueError(
                    f"particle {i} is a virtual site defined differently in the draft ({_describe(sd)}) and the "
                    f"target ({_describe(st)}); virtual sites are part of the target's dynamics, so the draft must "
                    "define them exactly as the target does")
    if all(target.getParticleMass(i).value_in_unit(openmm.unit.dalton) == 0 for i in range(n)):
        raise ValueError("every particle of the target System is massless: nothing to integrate")
    ct, cd = _constraints(target), _constraints(draft)
    if set(ct) != set(cd):
        only_t = sorted(set(ct) - set(cd))[:3]
        only_d = sorted(set(cd) - set(ct))[:3]
        raise ValueError(
            f"draft System has {len(cd)} constraints, target has {len(ct)}, and they differ "
            f"(only in target: {only_t}, only in draft: {only_d}); the draft must carry exactly the target's constraints"
        )
    for pair, d in ct.items():
        if not math.isclose(d, cd[pair], rel_tol=1e-9, abs_tol=1e-12):
            raise ValueError(f"constraint {pair} has length {cd[pair]} nm in the draft and {d} nm in the target")
    if target.usesPeriodicBoundaryConditions() != draft.usesPeriodicBoundaryConditions():
        raise ValueError(
            "target System %s periodic boundary conditions and the draft System %s"
            % ("uses" if target.usesPeriodicBoundaryConditions() else "does not use",
               "does" if draft.usesPeriodicBoundaryConditions() else "does not")
        )
    if target.usesPeriodicBoundaryConditions():
        bt, bd = _box(target), _box(draft)
        if not all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) for rt, rd in zip(bt, bd) for x, y in zip(rt, rd)):
            raise ValueError(
                f"the target System's default periodic box {bt} nm differs from the draft's {bd} nm; set the "
                "draft's with setDefaultPeriodicBoxVectors (or build both from the same topology)")
    ft, fd = cmMotionFrequency(target), cmMotionFrequency(draft)
    if ft != fd:
        raise ValueError(
            f"target System's CMMotionRemover frequency is {ft} and the draft's is {fd}: the draft must remove "
            "centre-of-mass motion exactly as the target does (openmm-ml's createSystem adds a CMMotionRemover "
            "with frequency 1); add or remove one in the draft System to match"
        )


#: relative mass difference beyond which taking the target's masses is more than rounding (force fields
#: give hydrogen 1.008 or 1.007947 Da: 5e-5)
MASS_ROUNDING = 1e-3


def withTargetMasses(target, draft):
    """The draft with the target's particle masses: ``draft`` itself if they agree, else a copy.

    The masses set the Langevin step's sigma and the draft's chain, so the draft must move
    with the target's.  Force fields differ in the last digits (hydrogen 1.008 or 1.007947
    Da): those are taken silently.  A larger difference (hydrogen mass repartitioning in one
    System only, say) is taken too, with a warning naming it, since the draft's forces were
    then made for other masses.  The user's System is never changed.
    """
    n = target.getNumParticles()
    if draft.getNumParticles() != n:
        return draft  # checkSystems names the problem
    mass = [(target.getParticleMass(i).value_in_unit(openmm.unit.dalton),
             draft.getParticleMass(i).value_in_unit(openmm.unit.dalton)) for i in range(n)]
    differ = [i for i, (mt, md) in enumerate(mass) if mt != md]
    if not differ:
        return draft
    beyond = [i for i in differ if abs(mass[i][0] - mass[i][1]) > MASS_ROUNDING * max(mass[i])]
    if beyond:
        import warnings

        light = [i for i in beyond if min(mass[i]) < 1.2]  # hydrogen in at least one of the two
        hmr = light and all(max(mass[i]) >= 1.5 for i in light)
        i = beyond[0]
        warnings.warn(
            f"the draft's masses differ from the target's beyond rounding at {len(beyond)} particles (particle {i}: "
            f"{mass[i][1]} Da in the draft, {mass[i][0]} Da in the target)"
            + ("; this looks like hydrogen mass repartitioning in one System but not the other" if hmr else "")
            + ": the draft moves with the target's masses (the run is exact; the draft's acceptance may suffer)",
            UserWarning, stacklevel=3)
    copy = openmm.XmlSerializer.clone(draft)
    for i in differ:
        copy.setParticleMass(i, mass[i][0])
    return copy


def _describe(definition):
    kind, particles, *numbers = definition
    return f"{kind} of particles {list(particles)}" + (f" with {', '.join(map(str, numbers))}" if numbers else "")


def replaySystem(target, draft):
    """A force-free copy of the target's particles, constraints, virtual sites and CMMotionRemover.

    Built from the XML of whichever System serializes (the draft first, which is
    usually classical) with every force but the CMMotionRemover removed *before*
    deserialization, so no pickled callable of a ``PythonForce`` is ever loaded.
    checkSystems() has made sure both Systems agree on everything kept.

    The draft's HarmonicAngleForces stay, with every force constant 0: OpenMM's CCMA
    builds its coupling matrix from the equilibrium angles of a System's HarmonicAngleForce,
    so without them the replay's constrained positions differed from the draft's for the
    same x_pre by up to 1e-6 nm (alanine dipeptide with rigid H bonds, even on the Reference
    platform), and the target force evaluated ahead at an accepted x_j^d was taken at
    another point than the x_j the run went on from.  With them an accepted x_j is the
    drafted x_j^d bit for bit (both solve the same constraints to the integrator's tolerance).
    """
    errors = []
    for system in (draft, target):
        try:
            xml = openmm.XmlSerializer.serialize(system)
        except Exception as exc:  # a PythonForce whose callable does not pickle
            errors.append(str(exc))
            continue
        root = ElementTree.fromstring(xml)
        forces = root.find("Forces")
        if forces is not None:
            for force in list(forces):
                if force.get("type") == "HarmonicAngleForce" and system is draft:
                    for angle in force.iter("Angle"):
                        angle.set("k", "0")
                elif force.get("type") != "CMMotionRemover":
                    forces.remove(force)
        return openmm.XmlSerializer.deserialize(ElementTree.tostring(root, encoding="unicode"))
    raise ValueError(
        "neither the draft nor the target System can be serialized to XML, which is needed to copy their "
        "constraints and virtual sites: " + "; ".join(errors)
    )


def withoutBarostat(system):
    """``system`` itself, or a copy without its Monte Carlo barostat (a draft's is ignored: the controller moves)."""
    indices = [i for i, force in enumerate(system.getForces()) if isinstance(force, SUPPORTED)]
    if not indices:
        return system
    copy = openmm.XmlSerializer.clone(system)
    for i in reversed(indices):
        copy.removeForce(i)
    return copy
