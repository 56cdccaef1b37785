"""Target verifiers: one interface (:class:`Verifier`), one module per transport."""

from .base import Verifier
from .inprocess import InProcessVerifier

__all__ = ["Verifier", "InProcessVerifier"]
