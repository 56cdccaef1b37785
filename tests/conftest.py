"""Shared fixtures: the toy target/draft pair most engine tests run on, and a simulation of it.

The toy Systems themselves are in ``tests/systems.py`` (importable from the test modules and from
the scripts that the MPI tests launch); these fixtures build what many tests start from.
"""

import os

# One OpenMP thread per test process: ``pytest -n 2`` runs two workers on two cores, and two tblite targets
# with two spinning OpenMP threads each made one GFN1-xTB call take 1.3 s instead of 0.06 s (measured).
# Set before any test imports tblite or torch; a test that needs more threads sets them for its subprocess.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

from systems import startPositions, startVelocities, topology, toyPair


def pytest_collection_modifyitems(config, items):
    """The statistical tests first, the constant-pressure ones (the longest, 1-3 min each on a core) before the
    others: ``pytest -n 2`` with ``--dist worksteal`` (pyproject.toml) then fills the tail with short tests.  In
    collection order the long ones came last and one worker ran alone for the last 7 of 31 minutes (measured)."""
    def rank(item):
        if item.get_closest_marker("slow") is None:
            return 2
        return 0 if "exactness_npt" in item.nodeid else 1
    items.sort(key=rank)  # stable: the order within each group is the collection order


@pytest.fixture
def toySystems():
    """(target, draft): the toy pair of ``systems.toyPair`` with its default differences."""
    return toyPair()


@pytest.fixture
def toySimulation():
    """A factory: ``toySimulation(**options)`` -> a SpeculativeSimulation of the toy pair on the Reference
    platform (300 K, 5/ps, 4 fs, window 4, seed 1 unless given), at the toy start state."""
    from openmm_lsd import SpeculativeSimulation

    def make(target=None, draft=None, *args, **options):
        if target is None or draft is None:
            target, draft = toyPair()
        if not args:
            args = (300, 5.0, 0.004)
        options = {"window": 4, "seed": 1, "platform": "Reference", **options}
        sim = SpeculativeSimulation(topology(target.getNumParticles()), target, draft, *args, **options)
        sim.context.setPositions(startPositions(target.getNumParticles()))
        sim.context.setVelocities(startVelocities(target.getNumParticles()))
        return sim

    return make
