"""A force model linear in its coefficients, fitted during the run: the ``'learned'`` correction's model.

c_theta(x) = sum_k theta_k g_k(x), g_k = -grad E_k, with the energies E_k of a low-order atomic
cluster expansion (the lowest orders: EAM-like), per species (particles of equal mass):

- pair terms, per species pair: E = sum_{i<j} exp(-((r_ij - c_k)/w)^2) f_c(r_ij), Gaussians
  centred 0.20-0.62 nm (w = 0.04 nm), f_c(r) = (cos(pi r/r_c) + 1)/2 below r_c = 0.65 nm (in a periodic
  box at most 0.499 times its shortest edge, for the minimum image);
- embedding terms, per species: E = sum_i (rho_i + 1e-4)^p, rho_i = sum_j exp(-(r_ij - 0.25 nm)/l) f_c(r_ij),
  three density lengths l (0.03, 0.06, 0.12 nm) and three powers p (0.5, 1.5, 2).

For one species that is 12 + 9 = 21 terms, DESIGN.md section 11's basis.  Optionally
(``angularLengths``), three-body terms, the atomic cluster expansion's next order: per centre
species, length l and Legendre order n (0-3 by default), E = sum_i sum_{j<k} phi_l(r_ij) phi_l(r_ik)
P_n(cos theta_jik), phi_l the densities' radial function (:class:`AngularTerms`).  A model may cover
a region (``particles``; the learned correction takes the atoms of an ML/MM target's ML potential).
For molecules, optionally (``bonded``), the draft's own bonded geometry as a basis: per type, powers 1-3 of
bond lengths and angles about the draft's equilibrium values and cos/sin of 1-3 times the torsions
(:class:`BondedTerms`), where the pair terms cannot reach (the draft's exclusions).

The same terms live twice: as numpy features G(x) (N*3, P) and energies for the fit, and as
forces in the draft System whose coefficients are global parameters (``lsd_learned0``, ...), set
with ``setParameter`` when a refit takes effect (no Context rebuild, no extra call per step):
one numpy ``PythonForce`` for a small System's or a region's whole model (faster there), OpenMM custom
forces for the pair and embedding terms of a larger one with a numpy ``PythonForce`` for its three-body
terms (:data:`NUMPY_WORK`).

The fit is ridge regression in the coupling's metric (DESIGN.md sections 7 and 11): each force
component weighted by 1/m_i, so it minimises the |m|^2 that decides acceptance.  Its normal
equations are sums over accepted frames in step order, without BLAS, and solved by a Cholesky
factorisation written out here: the coefficients are the same bits whatever the thread count.
"""

import math

import numpy as np
import openmm
from openmm import unit

CUTOFF = 0.65  # nm
CENTRES = tuple(0.20 + 0.42 * k / 11 for k in range(12))  # nm
WIDTH = 0.04  # nm
DENSITY_LENGTHS = (0.03, 0.06, 0.12)  # nm
DENSITY_ORIGIN = 0.25  # nm
POWERS = (0.5, 1.5, 2.0)
RHO_FLOOR = 1e-4
PARAMETER = "lsd_learned"
ANGULAR_LENGTHS = ()  # nm; three-body terms off unless given
ANGULAR_ORDERS = (0, 1, 2, 3)
BONDED_POWERS = (1.0, 2.0, 3.0)  # (q - q0)^p of a bond length or angle
TORSION_ORDERS = (1, 2, 3)  # cos(n phi), sin(n phi)
#: ``draftForces='auto'`` puts the model in the draft as one numpy ``PythonForce`` up to this many pairs times
#: coefficients (its cost grows with both), as OpenMM custom forces beyond. Measured draft steps on the
#: Reference platform (ms, draft alone / custom / numpy; docs/learned/draft-step-cost.json): the 3-particle
#: law-test chain (3 pairs x 6) 0.003 / 0.52 / 0.02; Cu13 (78 x 21) 0.55 / 2.89 / 1.87; 8 waters (252 x 54)
#: 0.008 / 2.23 / 4.03; fcc Cu32 (496 x 21) 0.76 / 3.19 / 4.03; Cu55 (1485 x 21) 1.19 / 5.44 / 8.39 (a
#: CustomGBForce costs ~0.2 ms a step whatever the size)
NUMPY_WORK = 5000
DRAFT_FORCES = ("auto", "custom", "numpy")

#: Legendre polynomials P_n(c) = sum_p c^p LEGENDRE_MONOMIALS[n][p], orders 0-4
MAX_ORDER = 4
LEGENDRE_MONOMIALS = {0: (1, 0, 0, 0, 0), 1: (0, 1, 0, 0, 0), 2: (-0.5, 0, 1.5, 0, 0), 3: (0, -1.5, 0, 2.5, 0),
                      4: (0.375, 0, -3.75, 0, 4.375)}


def _cutoff(r, rc):
    """f_c(r) = (cos(pi r/r_c) + 1)/2 below r_c (0 beyond) and its derivative."""
    inside = r < rc
    return (np.where(inside, 0.5 * (np.cos(np.pi * r / rc) + 1), 0.0),
            np.where(inside, -0.5 * np.pi / rc * np.sin(np.pi * r / rc), 0.0))


def _species(system, particles=None):
    """Species index per particle (particles of equal mass are one species; -1: massless, or outside
    ``particles`` where given) and their masses."""
    masses = [system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles())]
    inside = set(range(len(masses))) if particles is None else set(particles)
    kinds = sorted({m for i, m in enumerate(masses) if m > 0 and i in inside})
    return np.array([kinds.index(m) if m > 0 and i in inside else -1 for i, m in enumerate(masses)]), np.array(masses)


def targetRegion(target):
    """The particles a target's ML potentials act on, where that is a proper subset (ML/MM: the force
    difference from a classical draft lives there); None for all particles.  The region is the union of
    the particles that the target's PythonForces declare (openmm-ml's mixed Systems declare the ML atoms);
    a ``PythonForce`` that declares none acts on all."""
    if target is None:
        return None
    region = set()
    for force in target.getForces():
        if isinstance(force, openmm.PythonForce):
            declared = tuple(force.getParticles())
            if not declared:
                return None
            region.update(declared)
    if not region or len(region) >= target.getNumParticles():
        return None
    return sorted(region)


def _exclusions(system):
    """The (i, j) pairs, i < j, that the System's nonbonded forces exclude (NonbondedForce exceptions,
    CustomNonbondedForce and CustomGBForce exclusions)."""
    pairs = set()
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            for k in range(force.getNumExceptions()):
                i, j = force.getExceptionParameters(k)[:2]
                pairs.add((min(i, j), max(i, j)))
        elif isinstance(force, (openmm.CustomNonbondedForce, openmm.CustomGBForce)):
            for k in range(force.getNumExclusions()):
                i, j = force.getExclusionParticles(k)
                pairs.add((min(i, j), max(i, j)))
    return sorted(pairs)


class PairEmbeddingModel:
    """The learned correction's basis for a System; ``features`` for the fit, ``addTo`` for the draft."""

    def __init__(self, system, centres=CENTRES, densityLengths=DENSITY_LENGTHS, powers=POWERS, bySpecies=True,
                 angularLengths=ANGULAR_LENGTHS, angularOrders=ANGULAR_ORDERS, particles=None, draftForces="auto",
                 bonded=False):
        if draftForces not in DRAFT_FORCES:
            raise ValueError(f"learned draftForces must be one of {DRAFT_FORCES}, got {draftForces!r}")
        if draftForces == "custom" and particles is not None:
            raise ValueError("a region's model (particles) is a numpy PythonForce: custom forces would act on every "
                             "particle of the System; leave draftForces at 'auto'")
        self.draftForces = draftForces
        self.centres, self.densityLengths, self.powers = tuple(centres), tuple(densityLengths), tuple(powers)
        self.angularLengths, self.angularOrders = tuple(angularLengths), tuple(angularOrders)
        if any(n not in LEGENDRE_MONOMIALS for n in self.angularOrders):
            raise ValueError(f"angular orders must be among {sorted(LEGENDRE_MONOMIALS)}, got {self.angularOrders}")
        self.particles = None if particles is None else sorted(int(i) for i in particles)
        self.species, self.masses = _species(system, self.particles)
        if not bySpecies:  # one species for every massive particle (fewer coefficients)
            self.species = np.where(self.species >= 0, 0, -1)
        self.numParticles = len(self.species)
        self.numSpecies = int(self.species.max()) + 1 if self.numParticles else 0
        self.periodic = system.usesPeriodicBoundaryConditions()
        self.cutoff = CUTOFF
        if self.periodic:  # the minimum image: at most just under half the box (as the Sutton-Chen draft's)
            box = np.array([v.value_in_unit(unit.nanometer) for v in system.getDefaultPeriodicBoxVectors()])
            self.cutoff = min(CUTOFF, 0.499 * float(np.min(np.diag(box))))
        self.pairs = [(a, b) for a in range(self.numSpecies) for b in range(a, self.numSpecies)]
        # columns: pair terms (species pair, centre), then embedding terms (species, length, power)
        self.columns = ([("pair", ab, c) for ab in range(len(self.pairs)) for c in range(len(self.centres))]
                        + [("embed", s, l, p) for s in range(self.numSpecies) for l in range(len(self.densityLengths))
                           for p in range(len(self.powers))]
                        + [("angular", s, l, k) for s in range(self.numSpecies) for l in range(len(self.angularLengths))
                           for k in range(len(self.angularOrders))])
        self._numRadial = len(self.columns) - len([c for c in self.columns if c[0] == "angular"])
        # bonded terms (the draft's own bonds, angles and torsions among the model's particles), after the rest
        self.bonded = BondedTerms(system if bonded else None, self.species, self.periodic, len(self.columns))
        self.columns += self.bonded.columns
        self.numParameters = len(self.columns)
        # The draft's nonbonded exclusions (bonded neighbours, rigid waters' own pairs) are the model's too:
        # OpenMM requires the same exclusions in every nonbonded force of a System, and the draft's bonded
        # terms describe those pairs.
        self.exclusions = _exclusions(system)
        i, j = np.triu_indices(self.numParticles, 1)
        massive = (self.species[i] >= 0) & (self.species[j] >= 0)
        if self.exclusions:
            excluded = np.zeros((self.numParticles, self.numParticles), dtype=bool)
            for a, b in self.exclusions:
                excluded[a, b] = excluded[b, a] = True
            massive &= ~excluded[i, j]
        self._i, self._j = i[massive], j[massive]
        # three-body sets (i; j < k), i the centre, for the angular terms: OpenMM's CustomManyParticleForce in
        # UniqueCentralParticle mode takes a set when no pair in it is excluded (r_ij, r_ik < cutoff: fc says so)
        self._triplets = np.zeros((0, 3), dtype=int)
        if self.angularLengths:
            allowed = np.ones((self.numParticles, self.numParticles), dtype=bool)
            np.fill_diagonal(allowed, False)
            allowed[self.species < 0, :] = allowed[:, self.species < 0] = False
            for a, b in self.exclusions:
                allowed[a, b] = allowed[b, a] = False
            triplets = [(c, a, b) for c in range(self.numParticles) for a in range(self.numParticles)
                        for b in range(a + 1, self.numParticles) if allowed[c, a] and allowed[c, b] and allowed[a, b]]
            if triplets:
                self._triplets = np.array(triplets, dtype=int)
        angularColumns = [k for k, col in enumerate(self.columns) if col[0] == "angular"]
        self.angular = AngularTerms(self._triplets, self.species, self.numSpecies, self.angularLengths,
                                    self.angularOrders, self.cutoff, self.periodic,
                                    [f"{PARAMETER}{k}" for k in angularColumns])
        pairIndex = {ab: k for k, ab in enumerate(self.pairs)}
        si, sj = self.species[self._i], self.species[self._j]
        self._pairOf = np.array([pairIndex[(min(a, b), max(a, b))] for a, b in zip(si, sj)], dtype=int)
        # the coupling's metric 1/m_i per component; 0 for particles the model leaves out (massless, outside a region)
        self.weights = np.repeat(np.where(self.species >= 0, 1.0 / np.where(self.masses > 0, self.masses, 1.0), 0.0), 3)

    # ---- numpy: the features of the fit -----------------------------------------------------------

    def _geometry(self, x, box):
        d = _minimumImage(x[self._i] - x[self._j], box)
        r = np.sqrt((d * d).sum(axis=1))
        return d, r

    @property
    def numRadial(self):
        """The pair and embedding columns, which come first (the three-body, then the bonded columns follow)."""
        return self._numRadial

    def features(self, x, box=None, radialOnly=False):
        """G(x): shape (N*3, P), column k the force of E_k at positions ``x`` (nm) in kJ/mol/nm per unit theta_k
        (``radialOnly``: the pair and embedding columns only, (N*3, :attr:`numRadial`))."""
        x = np.asarray(x, dtype=np.float64)
        d, r = self._geometry(x, box)
        fc, dfc = _cutoff(r, self.cutoff)
        u = d / r[:, None]
        columns = self.numRadial if radialOnly else self.numParameters
        G = np.zeros((self.numParticles, 3, columns))
        column = 0
        n = len(self.centres)
        for ab in range(len(self.pairs)):
            mask = self._pairOf == ab
            for c in self.centres:
                gauss = np.exp(-(((r - c) / WIDTH) ** 2))
                dg = (gauss * dfc + fc * gauss * (-2.0 * (r - c) / WIDTH ** 2)) * mask
                self._scatter(G, column, -dg[:, None] * u)
                column += 1
        assert column == len(self.pairs) * n
        for s in range(self.numSpecies):
            for length in self.densityLengths:
                phi = np.exp(-(r - DENSITY_ORIGIN) / length)
                dphi = phi * dfc - phi / length * fc
                phi = phi * fc
                rho = np.full(self.numParticles, RHO_FLOOR)
                np.add.at(rho, self._i, phi)
                np.add.at(rho, self._j, phi)
                own = (self.species == s).astype(float)
                for p in self.powers:
                    dE = own * p * rho ** (p - 1.0)  # dE/drho_i for particles of species s
                    coefficient = (dE[self._i] + dE[self._j]) * dphi
                    self._scatter(G, column, -coefficient[:, None] * u)
                    column += 1
        if self.angularLengths and not radialOnly:
            column = self._angularFeatures(G, column, x, box)
        if self.bonded.columns and not radialOnly:
            G[:, :, column:] += self.bonded.features(x, box)
        return G.reshape(self.numParticles * 3, columns)

    def energies(self, x, box=None, radialOnly=False):
        """E_k(x) of every column: shape (P,), kJ/mol per unit theta_k (``radialOnly``: the pair and embedding
        columns only)."""
        x = np.asarray(x, dtype=np.float64)
        _, r = self._geometry(x, box)
        fc = _cutoff(r, self.cutoff)[0]
        out = []
        for ab in range(len(self.pairs)):
            mask = self._pairOf == ab
            out += [float((np.exp(-(((r - c) / WIDTH) ** 2)) * fc * mask).sum()) for c in self.centres]
        for s in range(self.numSpecies):
            own = self.species == s
            for length in self.densityLengths:
                phi = np.exp(-(r - DENSITY_ORIGIN) / length) * fc
                rho = np.full(self.numParticles, RHO_FLOOR)
                np.add.at(rho, self._i, phi)
                np.add.at(rho, self._j, phi)
                out += [float((rho[own] ** p).sum()) for p in self.powers]
        if self.angularLengths and not radialOnly:
            out += list(self.angular.energies(x, box))
        if self.bonded.columns and not radialOnly:
            out += list(self.bonded.energies(x, box))
        return np.array(out)

    def _angularFeatures(self, G, column, x, box):
        """Columns of the three-body terms (:class:`AngularTerms`), one per species, length and order."""
        columns = self.angular.features(x, box)
        G[:, :, column:column + columns.shape[-1]] += columns
        return column + columns.shape[-1]

    def _scatter(self, G, column, pairForce):
        """Add the force on i from a pair term, -dE/dr u_ij, to i and its opposite to j."""
        np.add.at(G[:, :, column], self._i, pairForce)
        np.add.at(G[:, :, column], self._j, -pairForce)

    def forces(self, features, theta):
        """c_theta at the positions of ``features``: shape (N, 3)."""
        return (features * theta[None, :]).sum(axis=1).reshape(self.numParticles, 3)

    # ---- OpenMM: the same terms as custom forces of the draft ---------------------------------------

    def parameterNames(self):
        return [f"{PARAMETER}{k}" for k in range(self.numParameters)]

    @property
    def numpyInDraft(self):
        """Whether :meth:`addTo` puts the model in the draft as one numpy ``PythonForce``."""
        return (self.particles is not None or self.draftForces == "numpy"
                or (self.draftForces == "auto" and len(self._i) * self.numParameters <= NUMPY_WORK))

    def addTo(self, system):
        """Add the basis to ``system``, every coefficient a global parameter starting at 0 (no force until
        :meth:`apply`): as one numpy ``PythonForce`` (``draftForces='numpy'``; ``'auto'`` up to
        :data:`NUMPY_WORK` pairs times coefficients, where it is the faster) or as a CustomNonbondedForce (pair
        terms) and a CustomGBForce per density (embedding), the three-body terms then a ``PythonForce`` of their own (a
        CustomManyParticleForce of the same terms costs 40-200 ms per evaluation on Cu13 on the CPU and
        Reference platforms).  A model of a region (``particles``: ML/MM) is always the numpy force over the
        region alone: custom forces would loop over every particle of the System (a CustomGBForce cannot be
        limited to a group), 40 ms per draft step with 174 waters."""
        names = self.parameterNames()
        if self.numpyInDraft:
            force = openmm.PythonForce(ModelForce(self), {name: 0.0 for name in names})
            force.setUsesPeriodicBoundaryConditions(self.periodic)
            force.setName("LearnedCorrection")
            system.addForce(force)
            return system
        if self.angularLengths and len(self._triplets):
            angular = openmm.PythonForce(self.angular, {name: 0.0 for name in self.angular.names})
            angular.setUsesPeriodicBoundaryConditions(self.periodic)
            angular.setName("LearnedCorrection")
            system.addForce(angular)
        if self.bonded.columns:
            bonded = openmm.PythonForce(self.bonded, {name: 0.0 for name in self.bonded.names})
            bonded.setUsesPeriodicBoundaryConditions(self.periodic)
            bonded.setName("LearnedCorrection")
            system.addForce(bonded)
        rc = self.cutoff
        fc = f"(0.5*(cos({math.pi!r}*r/{rc!r})+1)*step({rc!r}-r))"
        terms = []
        for ab, (a, b) in enumerate(self.pairs):
            select = f"(delta(s1-{a})*delta(s2-{b})" + (f"+delta(s1-{b})*delta(s2-{a}))" if a != b else ")")
            gaussians = "+".join(f"{names[ab * len(self.centres) + k]}*exp(-((r-{c!r})/{WIDTH!r})^2)"
                                 for k, c in enumerate(self.centres))
            terms.append(f"{select}*({gaussians})")
        pair = openmm.CustomNonbondedForce(f"{fc}*({'+'.join(terms)})")
        pair.addPerParticleParameter("s")
        for name in names:
            pair.addGlobalParameter(name, 0.0)
        # One CustomGBForce per density (OpenMM's Reference platform takes one pair-computed value per force).
        embeds = []
        for l, length in enumerate(self.densityLengths):
            embed = openmm.CustomGBForce()
            embed.addPerParticleParameter("s")
            # massless particles (virtual sites, species -1) take no part, as in :meth:`features`
            embed.addComputedValue("rho", f"step(s2+0.5)*exp(-(r-{DENSITY_ORIGIN!r})/{length!r})*{fc}",
                                   openmm.CustomGBForce.ParticlePair)
            pieces = []
            for s in range(self.numSpecies):
                for k, p in enumerate(self.powers):
                    name = names[self.columns.index(("embed", s, l, k))]
                    embed.addGlobalParameter(name, 0.0)
                    pieces.append(f"delta(s-{s})*{name}*(rho+{RHO_FLOOR!r})^{p!r}")
            embed.addEnergyTerm("+".join(pieces), openmm.CustomGBForce.SingleParticle)
            embeds.append(embed)
        for force in [pair] + embeds:
            if self.periodic:
                force.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic if force is pair
                                         else openmm.CustomGBForce.CutoffPeriodic)
                force.setCutoffDistance(rc)
            else:
                force.setNonbondedMethod(openmm.CustomNonbondedForce.NoCutoff if force is pair
                                         else openmm.CustomGBForce.NoCutoff)
            for s in self.species:
                force.addParticle([float(s)])
            for a, b in self.exclusions:
                force.addExclusion(a, b)
            force.setName("LearnedCorrection")
            system.addForce(force)
        return system

    def apply(self, context, theta):
        """Set the draft Context's coefficients to ``theta``."""
        for name, value in zip(self.parameterNames(), theta):
            context.setParameter(name, float(value))


class AngularTerms:
    """The learned model's three-body terms, ACE's second order: per centre species s, density length l and
    Legendre order n, E = sum over centres i of species s and pairs j < k of other particles of
    phi(r_ij) phi(r_ik) P_n(cos theta_jik), phi(r) = exp(-(r - 0.25 nm)/l) f_c(r).

    :meth:`features` gives the features of the fit; called with an OpenMM State (the draft's
    ``PythonForce``) it returns the energy and forces of sum theta_k E_k with theta_k the Context's global
    parameters ``names``.  Picklable (the draft System is copied through XML)."""

    def __init__(self, triplets, species, numSpecies, lengths, orders, cutoff, periodic, names):
        self.triplets, self.species, self.numSpecies = np.asarray(triplets, dtype=int), np.asarray(species), numSpecies
        self.lengths, self.orders, self.cutoff, self.periodic = tuple(lengths), tuple(orders), cutoff, periodic
        self.names = list(names)
        self.numParticles = len(self.species)
        # P_n(c) = sum_p M[p, n] c^p and P_n'(c) = sum_p D[p, n] c^p for the orders used
        self._monomials = np.array([LEGENDRE_MONOMIALS[n] for n in self.orders]).T
        self._derivatives = np.array([[(p + 1) * LEGENDRE_MONOMIALS[n][p + 1] if p + 1 <= MAX_ORDER else 0.0
                                       for p in range(MAX_ORDER + 1)] for n in self.orders]).T
        self._index = self._members = None

    def _pairIndex(self):
        """The particles in any triplet, and each triplet's (centre, j) and (centre, k) as flat indices into a
        matrix over those particles: the geometry and radial functions are computed once per pair."""
        if getattr(self, "_members", None) is None:
            self._members = np.unique(self.triplets)
            local = np.searchsorted(self._members, self.triplets)
            n = len(self._members)
            self._ij, self._ik = local[:, 0] * n + local[:, 1], local[:, 0] * n + local[:, 2]
        return self._members, self._ij, self._ik

    def _parts(self, x, box):
        """Per triplet, length and order: the radial products, the angular factors P_n and P_n', the unit
        vectors and the directions of the gradient's angular part."""
        members, ij, ik = self._pairIndex()
        y = np.asarray(x, dtype=np.float64)[members]
        d = _minimumImage(y[None, :, :] - y[:, None, :], box)  # d[i, j] = x_j - x_i
        r = np.sqrt((d * d).sum(axis=2))
        np.fill_diagonal(r, 1.0)
        u = (d / r[:, :, None]).reshape(-1, 3)
        r = r.ravel()
        fc, dfc = (f[:, None] for f in _cutoff(r, self.cutoff))
        lengths = np.array(self.lengths)[None, :]
        e = np.exp(-(r[:, None] - DENSITY_ORIGIN) / lengths)
        phi, dphi = e * fc, e * dfc - e / lengths * fc  # (pairs, lengths)
        uij, uik = u[ij], u[ik]
        cos = np.clip((uij * uik).sum(axis=1), -1.0, 1.0)
        powers = np.cumprod(np.broadcast_to(cos[:, None], (len(cos), MAX_ORDER)), axis=1)
        powers = np.concatenate([np.ones((len(cos), 1)), powers], axis=1)  # c^0 .. c^MAX_ORDER
        P = np.einsum("tp,pn->tn", powers, self._monomials)  # (T, orders)
        dP = np.einsum("tp,pn->tn", powers, self._derivatives)
        phiA, phiB = phi[ij], phi[ik]
        dcos_j = (uik - cos[:, None] * uij) / r[ij][:, None]
        dcos_k = (uij - cos[:, None] * uik) / r[ik][:, None]
        return phiA * phiB, dphi[ij] * phiB, phiA * dphi[ik], P, dP, uij, uik, dcos_j, dcos_k

    def features(self, x, box=None):
        """The columns' forces on the particles, (N, 3, columns): column (s, l, n) the force of the term of
        centre species s, length l and order n."""
        A, radialJ, radialK, P, dP, uij, uik, dcos_j, dcos_k = self._parts(x, box)
        T, L, O = len(P), len(self.lengths), len(self.orders)
        cj = radialJ[:, :, None] * P[:, None, :]  # (T, L, O): the gradient's radial parts at unit coefficient
        ck = radialK[:, :, None] * P[:, None, :]
        d = A[:, :, None] * dP[:, None, :]
        gj = cj[:, None] * uij[:, :, None, None] + d[:, None] * dcos_j[:, :, None, None]  # (T, 3, L, O): dE/dx_j
        gk = ck[:, None] * uik[:, :, None, None] + d[:, None] * dcos_k[:, :, None, None]
        centre = self.species[self.triplets[:, 0]]
        own = np.stack([(centre == s).astype(float) for s in range(self.numSpecies)], axis=1)  # (T, S)
        C = self.numSpecies * L * O
        gj = (gj[:, :, None] * own[:, None, :, None, None]).reshape(T, 3, C)
        gk = (gk[:, :, None] * own[:, None, :, None, None]).reshape(T, 3, C)
        out = np.zeros(self.numParticles * 3 * C)
        offsets = np.arange(3 * C)[None, :]
        for member, values in ((0, gj + gk), (1, -gj), (2, -gk)):
            index = (self.triplets[:, member] * 3 * C)[:, None] + offsets
            out += np.bincount(index.ravel(), values.reshape(T, 3 * C).ravel(), minlength=out.size)
        return out.reshape(self.numParticles, 3, C)

    def energies(self, x, box=None):
        """E_k of every column (s, l, n), in one pass over the triplets."""
        A, _, _, P, _, _, _, _, _ = self._parts(x, box)
        centre = self.species[self.triplets[:, 0]]
        return np.concatenate([((A[:, :, None] * P[:, None, :]) * (centre == s)[:, None, None]).sum(axis=0).ravel()
                               for s in range(self.numSpecies)])

    def evaluate(self, x, box, theta):
        """(energy, forces (N, 3)) of sum theta_k E_k: the draft's path, with as few numpy calls as it takes
        (each costs microseconds on a few hundred triplets)."""
        if not np.any(theta) or not len(self.triplets):
            return 0.0, np.zeros((self.numParticles, 3))
        A, radialJ, radialK, P, dP, uij, uik, dcos_j, dcos_k = self._parts(x, box)
        W = theta.reshape(self.numSpecies, len(self.lengths), len(self.orders))
        if self.numSpecies == 1:
            Ws = W[0][None, :, :]
        else:  # the centre's species picks its coefficients
            Ws = W[self.species[self.triplets[:, 0]]]
            Ws = np.where((self.species[self.triplets[:, 0]] >= 0)[:, None, None], Ws, 0.0)
        Q = np.einsum("tn,tln->tl", P, np.broadcast_to(Ws, (len(P),) + W.shape[1:]))
        dQ = np.einsum("tn,tln->tl", dP, np.broadcast_to(Ws, (len(P),) + W.shape[1:]))
        energy = float(np.einsum("tl,tl->", A, Q))
        d = np.einsum("tl,tl->t", A, dQ)[:, None]
        gj = np.einsum("tl,tl->t", radialJ, Q)[:, None] * uij + d * dcos_j  # dE/dx_j
        gk = np.einsum("tl,tl->t", radialK, Q)[:, None] * uik + d * dcos_k
        values = np.concatenate([(gj + gk).ravel(), (-gj).ravel(), (-gk).ravel()])
        forces = np.bincount(self._forceIndex, values, minlength=3 * self.numParticles)
        return energy, forces.reshape(self.numParticles, 3)

    @property
    def _forceIndex(self):
        """Flat (particle, axis) index of every value in :meth:`evaluate`'s concatenation (centre, j, k)."""
        if getattr(self, "_index", None) is None:
            axes = np.arange(3)[None, :]
            self._index = np.concatenate([(self.triplets[:, m][:, None] * 3 + axes).ravel() for m in range(3)])
        return self._index

    def __call__(self, state):
        parameters = state.getParameters()
        x, box = _stateGeometry(state, self.periodic)
        return self.evaluate(x, box, np.array([parameters[name] for name in self.names]))


def _minimumImage(d, box):
    """Difference vectors d (..., 3) to their minimum image in ``box`` (None: no box)."""
    if box is None:
        return d
    box = np.asarray(box)
    fractional = d @ np.linalg.inv(box)
    return (fractional - np.round(fractional)) @ box


class BondedTerms:
    """The learned model's bonded terms for molecules: per type (the species of the particles in canonical order)
    of the draft's harmonic bonds and angles, E = sum (q - q0)^p over the type's terms for p in
    :data:`BONDED_POWERS`, q the bond length or angle and q0 the draft's own equilibrium value (so p = 1 moves the
    equilibrium, p = 2 the stiffness, p = 3 the asymmetry); per type of the draft's torsions (unique quadruples),
    E = sum cos(n phi) and sum sin(n phi) for n in :data:`TORSION_ORDERS`.  The pair terms leave these pairs out
    (the draft's exclusions), so bonded geometry is where a force-field draft differs most from an ML or
    quantum target (DESIGN.md section 10) and where the pair terms cannot reach.

    Built from ``system`` (None: no terms): every HarmonicBondForce's pairs (a Urey-Bradley or restraint pair
    there counts as a bond; a pair listed twice takes the last r0), every HarmonicAngleForce's angles and every
    PeriodicTorsionForce's quadruples (once each, whatever their periodicities; other torsion forces are not
    read); only terms whose particles all have a species (massive, inside a region) count.  Called with an
    OpenMM State (a ``PythonForce``), the energy and forces of sum theta_k E_k, theta_k the Context's global
    parameters ``names``.  Picklable."""

    def __init__(self, system, species, periodic, first):
        self.periodic = periodic
        self.numParticles = len(species)
        bonds, angles, torsions = {}, {}, set()
        for force in (system.getForces() if system is not None else []):
            if isinstance(force, openmm.HarmonicBondForce):
                for k in range(force.getNumBonds()):
                    i, j, r0, _ = force.getBondParameters(k)
                    bonds[(min(i, j), max(i, j))] = r0.value_in_unit(unit.nanometer)
            elif isinstance(force, openmm.HarmonicAngleForce):
                for k in range(force.getNumAngles()):
                    a, b, c, theta0, _ = force.getAngleParameters(k)
                    angles[(min(a, c), b, max(a, c))] = theta0.value_in_unit(unit.radian)
            elif isinstance(force, openmm.PeriodicTorsionForce):
                for k in range(force.getNumTorsions()):
                    quadruple = tuple(force.getTorsionParameters(k)[:4])
                    torsions.add(min(quadruple, quadruple[::-1]))
        inside = lambda particles: all(species[p] >= 0 for p in particles)  # noqa: E731
        bonds = {key: value for key, value in sorted(bonds.items()) if inside(key)}
        angles = {key: value for key, value in sorted(angles.items()) if inside(key)}
        torsions = sorted(t for t in torsions if inside(t))

        def kind(particles):
            t = tuple(int(species[p]) for p in particles)
            return min(t, t[::-1])

        self._bonds = np.array(list(bonds), dtype=int).reshape(-1, 2)
        self._r0 = np.array(list(bonds.values()), dtype=np.float64)
        self._angles = np.array(list(angles), dtype=int).reshape(-1, 3)
        self._theta0 = np.array(list(angles.values()), dtype=np.float64)
        self._torsions = np.array(torsions, dtype=int).reshape(-1, 4)
        self._bondType, bondTypes = self._types([kind(b) for b in bonds])
        self._angleType, angleTypes = self._types([kind(a) for a in angles])
        self._torsionType, torsionTypes = self._types([kind(t) for t in torsions])
        self.columns = ([("bond", t, p) for t in range(len(bondTypes)) for p in BONDED_POWERS]
                        + [("angle", t, p) for t in range(len(angleTypes)) for p in BONDED_POWERS]
                        + [("torsion", t, f, n) for t in range(len(torsionTypes)) for f in ("cos", "sin")
                           for n in TORSION_ORDERS])
        self.names = [f"{PARAMETER}{first + k}" for k in range(len(self.columns))]

    @staticmethod
    def _types(keys):
        types = sorted(set(keys))
        return np.array([types.index(k) for k in keys], dtype=int), types

    def _terms(self, x, box):
        """Per kind present (bonds, angles, torsions): (kind, the particles (terms, k), each term's type, the
        coordinate q of each term (r - r0, theta - theta0 or phi), dq/dx (terms, k, 3)); and the powers."""
        x = np.asarray(x, dtype=np.float64)
        out = []
        P = np.array(BONDED_POWERS, dtype=np.float64)
        if len(self._bonds):
            d = _minimumImage(x[self._bonds[:, 1]] - x[self._bonds[:, 0]], box)
            r = np.sqrt((d * d).sum(axis=1))
            u = d / r[:, None]
            out.append(("bond", self._bonds, self._bondType, r - self._r0, np.stack([-u, u], axis=1)))
        if len(self._angles):
            u = _minimumImage(x[self._angles[:, 0]] - x[self._angles[:, 1]], box)
            v = _minimumImage(x[self._angles[:, 2]] - x[self._angles[:, 1]], box)
            lu, lv = np.sqrt((u * u).sum(axis=1))[:, None], np.sqrt((v * v).sum(axis=1))[:, None]
            cos = np.clip((u * v).sum(axis=1)[:, None] / (lu * lv), -1.0, 1.0)
            sin = np.maximum(np.sqrt(1.0 - cos * cos), 1e-8)
            da = -(v / (lu * lv) - cos * u / (lu * lu)) / sin
            dc = -(u / (lu * lv) - cos * v / (lv * lv)) / sin
            theta = np.arccos(cos[:, 0])
            out.append(("angle", self._angles, self._angleType, theta - self._theta0, np.stack([da, -da - dc, dc], axis=1)))
        if len(self._torsions):
            t = self._torsions
            b1 = _minimumImage(x[t[:, 1]] - x[t[:, 0]], box)
            b2 = _minimumImage(x[t[:, 2]] - x[t[:, 1]], box)
            b3 = _minimumImage(x[t[:, 3]] - x[t[:, 2]], box)
            n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
            l2 = np.sqrt((b2 * b2).sum(axis=1))[:, None]
            phi = np.arctan2((np.cross(n1, n2) * b2).sum(axis=1) / l2[:, 0], (n1 * n2).sum(axis=1))
            da = -l2 / np.maximum((n1 * n1).sum(axis=1), 1e-300)[:, None] * n1
            dd = l2 / np.maximum((n2 * n2).sum(axis=1), 1e-300)[:, None] * n2
            f1, f3 = (b1 * b2).sum(axis=1)[:, None] / (l2 * l2), (b3 * b2).sum(axis=1)[:, None] / (l2 * l2)
            db = -(1.0 + f1) * da + f3 * dd
            dc = -(1.0 + f3) * dd + f1 * da
            out.append(("torsion", t, self._torsionType, phi, np.stack([da, db, dc, dd], axis=1)))
        return out, P

    def _columnsOf(self, kind, q, P):
        """(terms, columns of this kind per type) energies and dE/dq of one type's columns."""
        if kind == "torsion":
            n = np.array(TORSION_ORDERS, dtype=np.float64)[None, :]
            nq = n * q[:, None]
            return (np.concatenate([np.cos(nq), np.sin(nq)], axis=1),
                    np.concatenate([-n * np.sin(nq), n * np.cos(nq)], axis=1))
        return q[:, None] ** P[None, :], P[None, :] * q[:, None] ** (P[None, :] - 1.0)

    def features(self, x, box=None):
        """The columns' forces on the particles, (N, 3, columns)."""
        return self._features(*self._terms(x, box))

    def _features(self, parts, P):
        out = np.zeros((self.numParticles, 3, len(self.columns)))
        column = 0
        for kind, particles, types, q, dq in parts:
            _, dE = self._columnsOf(kind, q, P)
            width = dE.shape[1]
            for t in range(int(types.max()) + 1):
                mine = types == t
                for m in range(particles.shape[1]):
                    # force = -dE/dq dq/dx on each particle of each term of type t, column by column
                    values = -dE[mine][:, :, None] * dq[mine][:, m][:, None, :]  # (terms, width, 3)
                    np.add.at(out, (particles[mine, m][:, None, None], np.arange(3)[None, None, :],
                                    column + np.arange(width)[None, :, None]), values)
                column += width
        return out

    def energies(self, x, box=None):
        """E_k of every column."""
        return self._energies(*self._terms(x, box))

    def _energies(self, parts, P):
        out = []
        for kind, particles, types, q, dq in parts:
            E, _ = self._columnsOf(kind, q, P)
            for t in range(int(types.max()) + 1):
                out += list(E[types == t].sum(axis=0))
        return np.array(out)

    def evaluate(self, x, box, theta):
        """(energy, forces (N, 3)) of sum theta_k E_k."""
        if not np.any(theta) or not self.columns:
            return 0.0, np.zeros((self.numParticles, 3))
        parts, P = self._terms(x, box)  # the geometry once for both
        return float((self._energies(parts, P) * theta).sum()), (self._features(parts, P) * theta).sum(axis=2)

    def __call__(self, state):
        parameters = state.getParameters()
        x, box = _stateGeometry(state, self.periodic)
        return self.evaluate(x, box, np.array([parameters[name] for name in self.names]))


def _stateGeometry(state, periodic):
    x = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    return x, (state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer) if periodic else None)


class ModelForce:
    """The callable of the ``PythonForce`` of a model in numpy (a region's, or a small System's): energy and
    forces of sum theta_k E_k (features and energies of :class:`PairEmbeddingModel`), theta the Context's global
    parameters."""

    def __init__(self, model):
        self.model = model
        self.names = model.parameterNames()

    def __call__(self, state):
        parameters = state.getParameters()
        theta = np.array([parameters[name] for name in self.names])
        if not np.any(theta):
            return 0.0, np.zeros((self.model.numParticles, 3))
        x, box = _stateGeometry(state, self.model.periodic)
        model, k = self.model, self.model.numRadial
        energy = float((model.energies(x, box, radialOnly=True) * theta[:k]).sum())
        forces = model.forces(model.features(x, box, radialOnly=True), theta[:k])
        for terms in (model.angular, model.bonded):
            if terms.names:
                # the three-body terms summed directly (AngularTerms.evaluate), not as columns of features that
                # the coefficients then sum: 12 columns of every triplet's gradients cost Cu13's draft step ~1.8 ms
                part = theta[k:k + len(terms.names)]
                termsEnergy, termsForces = terms.evaluate(x, box, part)
                energy, forces = energy + termsEnergy, forces + termsForces
                k += len(terms.names)
        return energy, forces


def normalEquations(features, residual, weights):
    """(G^T W G, G^T W r) of one frame, summed in a fixed order without BLAS (bitwise the same on any
    thread count): W the coupling's metric 1/m_i per force component."""
    keep = weights > 0  # the rows of particles the model leaves out carry nothing (ML/MM: most of them)
    features, residual, weights = features[keep], residual[keep], weights[keep]
    weighted = features * weights[:, None]
    return (weighted[:, :, None] * features[:, None, :]).sum(axis=0), (weighted * residual[:, None]).sum(axis=0)


def solveRidge(A, y, ridge):
    """theta = (A + ridge diag(A))^-1 y by a Cholesky factorisation written out (no LAPACK, no threads)."""
    n = len(y)
    if n == 0:
        return np.zeros(0)
    scale = np.sqrt(np.maximum(np.diag(A), 1e-300))
    M = A / scale[:, None] / scale[None, :] + ridge * np.eye(n)
    return solveSymmetric(M, y / scale) / scale


def solveSymmetric(M, b):
    """M^-1 b for a symmetric positive definite M, by a Cholesky factorisation written out: the sums are
    elementwise products reduced by numpy (no BLAS, no LAPACK), the same bits on any thread count."""
    n = len(b)
    L = np.zeros_like(M)
    for k in range(n):  # column by column; sums as elementwise products reduced by numpy (no BLAS)
        L[k, k] = math.sqrt(max(M[k, k] - float((L[k, :k] * L[k, :k]).sum()), 1e-300))
        L[k + 1:, k] = (M[k + 1:, k] - (L[k + 1:, :k] * L[k, :k]).sum(axis=1)) / L[k, k]
    z = np.zeros(n)
    for i in range(n):
        z[i] = (b[i] - float((L[i, :i] * z[:i]).sum())) / L[i, i]
    out = np.zeros(n)
    for i in reversed(range(n)):
        out[i] = (z[i] - float((L[i + 1:, i] * out[i + 1:]).sum())) / L[i, i]
    return out
