"""The package's own torch example potential, for batched verification.

:class:`TorchPairPotential` is a small neural pair potential of the kind ML
potentials are built from (radial basis of interatomic distances, a multilayer
perceptron per pair, smooth cutoff), in float64, with forces by autograd.  It
evaluates one configuration as the callable of an OpenMM ``PythonForce`` and B
configurations in one call through :meth:`batchForces`, which is what
:class:`~openmm_lsd.verifiers.BatchedVerifier` uses.  Its weights are random
(fixed seed): it is a stand-in for a trained model's cost and shape, not a force
field.  Needs torch (``pip install torch==2.13.0`` takes a CPU build).
"""

import numpy as np
import openmm

__all__ = ["TorchPairPotential"]


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise ImportError("TorchPairPotential needs torch: pip install torch (a CPU build is enough)") from exc
    return torch


class TorchPairPotential:
    """E(x) = scale * sum_{i<j} MLP(RBF(r_ij)) * f_cut(r_ij), in kJ/mol with x in nm.

    Parameters
    ----------
    numParticles : int
    hidden : int
        Width of the two hidden layers.
    numBasis : int
        Gaussian radial basis functions between 0 and ``cutoff``.
    cutoff : float
        Cutoff in nm (cosine switch).
    scale : float
        Energy scale in kJ/mol.
    seed : int
        Seed of the random weights.
    """

    def __init__(self, numParticles, hidden=16, numBasis=16, cutoff=0.5, scale=2.0, seed=0):
        torch = _torch()
        self.settings = dict(numParticles=numParticles, hidden=hidden, numBasis=numBasis, cutoff=cutoff,
                             scale=scale, seed=seed)
        generator = torch.Generator().manual_seed(seed)
        i, j = torch.triu_indices(numParticles, numParticles, 1)
        self._i, self._j = i, j
        self._centres = torch.linspace(0.0, cutoff, numBasis, dtype=torch.float64)
        self._width = cutoff / numBasis
        layers = [torch.nn.Linear(numBasis, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden),
                  torch.nn.SiLU(), torch.nn.Linear(hidden, 1)]
        self.net = torch.nn.Sequential(*layers).double()
        with torch.no_grad():
            for p in self.net.parameters():
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) / np.sqrt(p.shape[-1]))
        self.cutoff = cutoff
        self.scale = scale

    def __getstate__(self):
        return {"settings": self.settings}

    def __setstate__(self, state):
        self.__init__(**state["settings"])

    def _energy(self, x):
        torch = _torch()
        d = x[:, self._i] - x[:, self._j]
        r = torch.sqrt((d * d).sum(-1))
        basis = torch.exp(-(((r[..., None] - self._centres) / self._width) ** 2))
        switch = torch.where(r < self.cutoff, 0.5 * (torch.cos(np.pi * r / self.cutoff) + 1), torch.zeros_like(r))
        return self.scale * (self.net(basis).squeeze(-1) * switch).sum(-1)

    def batchEnergiesAndForces(self, positions):
        """Energies (B,) in kJ/mol and forces (B, N, 3) in kJ/mol/nm for positions (B, N, 3) in nm."""
        torch = _torch()
        x = torch.tensor(np.asarray(positions, dtype=np.float64), requires_grad=True)
        energies = self._energy(x)
        (gradient,) = torch.autograd.grad(energies.sum(), x)
        return energies.detach().numpy(), -gradient.numpy()

    def batchForces(self, positions):
        """Forces (B, N, 3) for positions (B, N, 3): the function a BatchedVerifier calls."""
        return self.batchEnergiesAndForces(positions)[1]

    def __call__(self, state):
        """One configuration, as the callable of an OpenMM ``PythonForce``."""
        positions = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
        energies, forces = self.batchEnergiesAndForces(positions[None])
        return float(energies[0]), forces[0]

    def addTo(self, system):
        """Add this potential to ``system`` as a ``PythonForce``; returns the force's index."""
        return system.addForce(openmm.PythonForce(self))
