"""Target verifiers: one interface (:class:`Verifier`), one module per transport."""

from .base import Evaluation, Verifier
from .batched import BatchedVerifier
from .inprocess import InProcessVerifier

__all__ = ["Evaluation", "Verifier", "InProcessVerifier", "BatchedVerifier", "MPIVerifier"]


def __getattr__(name):
    # The MPI verifier imports mpi4py only when used.
    if name == "MPIVerifier":
        from .mpi import MPIVerifier

        return MPIVerifier
    raise AttributeError(name)
