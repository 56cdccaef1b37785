"""``python -m openmm_lsd.cli``: the ``openmm-lsd`` command."""

from . import main

main()
