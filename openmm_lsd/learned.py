"""A force model linear in its coefficients, fitted during the run: the ``'learned'`` correction's model.

c_theta(x) = sum_k theta_k g_k(x), g_k = -grad E_k, with the energies E_k of a low-order atomic
cluster expansion (the lowest orders: EAM-like), per species (particles of equal mass):

- pair terms, per species pair: E = sum_{i<j} exp(-((r_ij - c_k)/w)^2) f_c(r_ij), Gaussians
  centred 0.20-0.62 nm (w = 0.04 nm), f_c(r) = (cos(pi r/r_c) + 1)/2 below r_c = 0.65 nm (in a periodic
  box at most 0.499 times its shortest edge, for the minimum image);
- embedding terms, per species: E = sum_i (rho_i + 1e-4)^p, rho_i = sum_j exp(-(r_ij - 0.25 nm)/l) f_c(r_ij),
  three density lengths l (0.03, 0.06, 0.12 nm) and three powers p (0.5, 1.5, 2).

For one species that is 12 + 9 = 21 terms, DESIGN.md section 11's basis.  The same terms live
twice: as numpy features G(x) (N*3, P) for the fit, and as OpenMM custom forces in the draft
System whose coefficients are global parameters (``lsd_learned0``, ...), set with
``setParameter`` when a refit takes effect (no Context rebuild, no extra call per step).

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


def _species(system):
    """Species index per particle (particles of equal mass are one species) and their masses."""
    masses = [system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles())]
    kinds = sorted({m for m in masses if m > 0})
    return np.array([kinds.index(m) if m > 0 else -1 for m in masses]), np.array(masses)


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

    def __init__(self, system, centres=CENTRES, densityLengths=DENSITY_LENGTHS, powers=POWERS, bySpecies=True):
        self.centres, self.densityLengths, self.powers = tuple(centres), tuple(densityLengths), tuple(powers)
        self.species, self.masses = _species(system)
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
                           for p in range(len(self.powers))])
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
        pairIndex = {ab: k for k, ab in enumerate(self.pairs)}
        si, sj = self.species[self._i], self.species[self._j]
        self._pairOf = np.array([pairIndex[(min(a, b), max(a, b))] for a, b in zip(si, sj)], dtype=int)
        self.weights = np.repeat(np.where(self.masses > 0, 1.0 / np.where(self.masses > 0, self.masses, 1.0), 0.0), 3)

    # ---- numpy: the features of the fit -----------------------------------------------------------

    def _geometry(self, x, box):
        d = x[self._i] - x[self._j]
        if box is not None:
            box = np.asarray(box)
            fractional = d @ np.linalg.inv(box)
            d = (fractional - np.round(fractional)) @ box
        r = np.sqrt((d * d).sum(axis=1))
        return d, r

    def features(self, x, box=None):
        """G(x): shape (N*3, P), column k the force of E_k at positions ``x`` (nm) in kJ/mol/nm per unit theta_k."""
        x = np.asarray(x, dtype=np.float64)
        d, r = self._geometry(x, box)
        rc = self.cutoff
        inside = r < rc
        fc = np.where(inside, 0.5 * (np.cos(np.pi * r / rc) + 1), 0.0)
        dfc = np.where(inside, -0.5 * np.pi / rc * np.sin(np.pi * r / rc), 0.0)
        u = d / r[:, None]
        G = np.zeros((self.numParticles, 3, self.numParameters))
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
        return G.reshape(self.numParticles * 3, self.numParameters)

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

    def addTo(self, system):
        """Add the basis to ``system`` as a CustomNonbondedForce (pair terms) and a CustomGBForce (embedding),
        every coefficient a global parameter starting at 0 (no force until :meth:`apply`)."""
        names = self.parameterNames()
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


def normalEquations(features, residual, weights):
    """(G^T W G, G^T W r) of one frame, summed in a fixed order without BLAS (bitwise the same on any
    thread count): W the coupling's metric 1/m_i per force component."""
    weighted = features * weights[:, None]
    return (weighted[:, :, None] * features[:, None, :]).sum(axis=0), (weighted * residual[:, None]).sum(axis=0)


def solveRidge(A, y, ridge):
    """theta = (A + ridge diag(A))^-1 y by a Cholesky factorisation written out (no LAPACK, no threads)."""
    n = len(y)
    if n == 0:
        return np.zeros(0)
    scale = np.sqrt(np.maximum(np.diag(A), 1e-300))
    M = A / scale[:, None] / scale[None, :] + ridge * np.eye(n)
    b = y / scale
    L = np.zeros_like(M)
    for k in range(n):  # column by column; sums as elementwise products reduced by numpy (no BLAS)
        L[k, k] = math.sqrt(max(M[k, k] - float((L[k, :k] * L[k, :k]).sum()), 1e-300))
        L[k + 1:, k] = (M[k + 1:, k] - (L[k + 1:, :k] * L[k, :k]).sum(axis=1)) / L[k, k]
    z = np.zeros(n)
    for i in range(n):
        z[i] = (b[i] - float((L[i, :i] * z[:i]).sum())) / L[i, i]
    theta = np.zeros(n)
    for i in reversed(range(n)):
        theta[i] = (z[i] - float((L[i + 1:, i] * theta[i + 1:]).sum())) / L[i, i]
    return theta / scale
