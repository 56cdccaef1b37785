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

try:  # the SevenNet calculator is an ASE calculator; ase comes with sevenn (the rest of the module needs none)
    from ase.calculators.calculator import Calculator as _AseCalculator
except ImportError:  # pragma: no cover
    _AseCalculator = object

__all__ = ["TorchPairPotential", "SevenNetPotential"]


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


#: The SevenNet checkpoints that ship inside the ``sevenn`` wheel (no download), by the names
#: :func:`openmm_lsd.createTarget` takes, and sevenn's own names for them.
SEVENNET_MODELS = {"sevennet-0": "7net-0", "sevennet-0-22may2024": "7net-0_22May2024",
                   "sevennet-l3i5": "7net-l3i5", "sevennet-mf-0": "7net-mf-0"}
#: The fidelity (sevenn's ``modal``) used for a multi-fidelity checkpoint when none is given: the PBE
#: data SevenNet-0 itself was trained on (MPtrj).
DEFAULT_MODAL = "PBE"


def sevennetName(model):
    """The package's name (``'sevennet-0'``...) for ``model`` given as it or as sevenn's (``'7net-0'``), or None."""
    key = str(model).lower()
    if key.startswith("7net-"):
        key = "sevennet-" + key[len("7net-"):]
    key = key.replace("_", "-")
    return key if key in SEVENNET_MODELS else None


class SevenNetPotential:
    """A SevenNet graph-network potential (``sevenn``'s shipped checkpoints), one or many configurations per call.

    The model evaluates one configuration as an ASE calculator (:meth:`calculator`, which
    :func:`openmm_lsd.createTarget` puts inside openmm-ml's ``ase`` potential) and B
    configurations as one torch_geometric batch (:meth:`batchEnergiesAndForces`, what
    :class:`~openmm_lsd.verifiers.BatchedVerifier` calls).  Both go through the same batched
    model call (one configuration is a batch of one), so on the CPU the batched verifier's
    forces are bit for bit those of the target System (energies agree to float32 rounding,
    about 1e-8 relative: the model's per-graph sums depend on the batch).

    Parameters
    ----------
    model : str
        ``'sevennet-0'`` (SevenNet-0, 11 July 2024), ``'sevennet-0-22may2024'``,
        ``'sevennet-l3i5'`` or ``'sevennet-mf-0'`` (sevenn's ``'7net-...'`` names work too).
    modal : str, optional
        The fidelity of a multi-fidelity model (``'sevennet-mf-0'``: ``'PBE'`` (default) or
        ``'R2SCAN'``); refused for the others.
    device : str, optional
        ``'cpu'``, ``'cuda'``, ``'cuda:1'``... or ``'auto'`` (default): the GPU when torch
        sees one.  Under MPI, :func:`openmm_lsd.assignDevice` gives each rank one GPU, which
        ``'auto'`` then takes.
    threads : int, optional
        torch's CPU threads during a call (default 1).  torch's CPU reductions split their
        work by thread count and, with more than one thread, do not repeat to the last bit:
        with a fixed count the forces are a function of the positions alone, which makes a run
        deterministic (DESIGN.md section 9) and the same on any number of verifier ranks.
    """

    def __init__(self, model="sevennet-0", modal=None, device="auto", threads=1):
        name = sevennetName(model)
        if name is None:
            raise ValueError(f"unknown SevenNet model {model!r}; the shipped ones are {sorted(SEVENNET_MODELS)}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        torch = _torch()
        try:
            from sevenn.util import load_checkpoint
        except ImportError as exc:
            raise ImportError("SevenNet targets need sevenn: pip install torch==2.13.0 (or your own torch build) "
                              "and then pip install 'openmm-lsd[sevennet]'") from exc
        self.settings = dict(model=name, modal=modal, device=device, threads=threads)
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   "cpu" if device == "auto" else device)
        self.threads = threads
        checkpoint = load_checkpoint(SEVENNET_MODELS[name])
        self.model = checkpoint.build_model()
        self.model.set_is_batch_data(True)
        self.model.to(self.device)
        self.model.eval()
        self.typeMap = dict(self.model.type_map)
        self.cutoff = float(self.model.cutoff)
        modals = list(self.model.modal_map or {})
        if modals:
            modal = DEFAULT_MODAL if modal is None else modal
            if modal not in modals:
                raise ValueError(f"{name} has the fidelities {modals}, not {modal!r}")
        elif modal is not None:
            raise ValueError(f"{name} has one fidelity; modal={modal!r} applies to 'sevennet-mf-0' only")
        self.modal = modal

    def __getstate__(self):
        return {"settings": self.settings}

    def __setstate__(self, state):
        self.__init__(**state["settings"])

    def __str__(self):
        name = self.settings["model"]
        return name if self.modal is None else f"{name} ({self.modal})"

    def checkElements(self, numbers):
        """Refuse atomic numbers the model was not trained on (before any work starts)."""
        unknown = sorted(set(int(z) for z in numbers) - set(self.typeMap))
        if unknown:
            raise ValueError(f"{self.settings['model']} knows no element with atomic number {unknown}")

    def _graph(self, numbers, positions, cell):
        import ase
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        atoms = ase.Atoms(numbers=numbers, positions=positions, cell=cell, pbc=cell is not None)
        data = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self.cutoff, with_shift=False))
        if self.modal is not None:
            data["data_modality"] = self.modal  # sevenn's key names (sevenn._keys)
        return data

    def evaluate(self, positions, cells=None, numbers=None):
        """Energies (B,) in eV and forces (B, N, 3) in eV/A, float64, of B configurations (A) in one model call.

        ``cells`` (B, 3, 3), in A, for periodic configurations; ``numbers`` the atomic numbers
        (N,), by default those given to :meth:`setNumbers`.
        """
        from torch_geometric.data import Batch

        torch = _torch()
        numbers = self.numbers if numbers is None else np.asarray(numbers)
        positions = np.asarray(positions, dtype=np.float64)
        cells = [None] * len(positions) if cells is None else np.asarray(cells, dtype=np.float64)
        batch = Batch.from_data_list([self._graph(numbers, x, cell) for x, cell in zip(positions, cells)])
        batch.to(self.device)
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            output = self.model(batch)
        finally:
            torch.set_num_threads(threads)
        energies = output["inferred_total_energy"].detach().cpu().numpy().astype(np.float64).reshape(-1)
        forces = output["inferred_force"].detach().cpu().numpy().astype(np.float64).reshape(positions.shape)
        return energies, forces

    def setNumbers(self, numbers):
        """The atomic numbers (N,) of the configurations that :meth:`batchEnergiesAndForces` is given."""
        self.checkElements(numbers)
        self.numbers = np.asarray(numbers, dtype=np.int64)

    def batchEnergiesAndForces(self, positions, boxes=None):
        """Energies (B,) in kJ/mol and forces (B, N, 3) in kJ/mol/nm for positions (B, N, 3) in nm.

        ``boxes`` (B, 3, 3) in nm for a periodic System.  The units are converted as openmm-ml's
        ``ase`` potential converts its calculator's results, so the numbers are bit for bit those
        of the target System built by :func:`openmm_lsd.createTarget`.
        """
        import ase.units

        positions = np.asarray(positions, dtype=np.float64) * 10.0
        cells = None if boxes is None else np.asarray(boxes, dtype=np.float64) * 10.0
        energies, forces = self.evaluate(positions, cells)
        return energies / (ase.units.kJ / ase.units.mol), forces * 10 / (ase.units.kJ / ase.units.mol)

    def batchForces(self, positions, boxes=None):
        """Forces (B, N, 3) for positions (B, N, 3): the function a BatchedVerifier calls."""
        return self.batchEnergiesAndForces(positions, boxes)[1]

    def calculator(self):
        """An ASE calculator that evaluates this model (one configuration as a batch of one), in eV and A."""
        return SevenNetCalculator(self)


class SevenNetCalculator(_AseCalculator):
    """The ASE calculator of a :class:`SevenNetPotential` (eV, A): one configuration through the batched call."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, potential):
        super().__init__()
        self.potential = potential

    def calculate(self, atoms=None, properties=None, system_changes=None):
        from ase.calculators.calculator import all_changes

        super().calculate(atoms, properties, all_changes if system_changes is None else system_changes)
        cell = np.asarray(self.atoms.get_cell())[None] if any(self.atoms.get_pbc()) else None
        energies, forces = self.potential.evaluate(self.atoms.get_positions()[None], cell, self.atoms.numbers)
        self.results = {"energy": energies[0], "free_energy": energies[0], "forces": forces[0]}

    def __reduce__(self):
        return SevenNetCalculator, (self.potential,)
