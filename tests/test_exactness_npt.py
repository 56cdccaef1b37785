"""Constant pressure: LSD with the target's MonteCarloBarostat has the law of OpenMM's own serial NPT run.

System and protocol (tests/npt.py): 12 rigid diatomic Lennard-Jones molecules in a
periodic box at 1000 bar and 300 K, target and draft with different sigma and epsilon
(step acceptance ~0.86, volume-move acceptance ~0.92); from one fixed state at step 4,
24 steps with a volume move attempted before every second step (12 attempts, so the
adaptive volume step changes within a repetition), molecule-wise scaling.  Reference:
a fresh OpenMM Context per repetition with ``LangevinMiddleIntegrator`` and OpenMM's
``MonteCarloBarostat`` (the package's leapfrog integrator for ``'leapfrog'``), so its
move schedule and volume step start where LSD's do.

Test: two-sample Kolmogorov-Smirnov on 19 columns (final volume, x and v of molecule
0's two atoms, 6 fixed random projections of the final state), Bonferroni-combined;
fixed seeds, so each outcome is deterministic.  Exact variants need p > 1e-3, negative
controls p < 1e-6 at the same sample size as their exact variant or less.

Sample sizes and measured p (docs/exactness.md):
- default path (LangevinMiddle, default 'extrapolate-quadratic' correction):
  R = 10,000, p = 1.0;
- control 'barostat_draft_energy' (moves decided on the draft's energies):
  R = 1,500 (p = 8.9e-33 at 3,000);
- control 'barostat_no_log' (the N kT ln(V'/V) term left out, a small bias):
  R = 10,000, p = 1.6e-7;
- leapfrog scheme: R = 3,000, exact (its draft-energy control 1,500);
- MonteCarloAnisotropicBarostat (x and z scaled at 600 and 1500 bar, y fixed; cutoff
  0.5 nm; the box's x and z edges compared too, 21 columns): R = 3,000, exact (its
  draft-energy control 1,500);
- the move schedule from step 5 with frequency 4 over 7 steps (OpenMM counts the steps its
  Context took, one move; by step index there would be two): R = 3,000, exact and the
  control 'barostat_schedule_by_index';
- the adaptive volume step over 40 attempts (frequency 1, the step grows 4 times; the last
  move's volume change is a 20th column): R = 2,000, exact and the control
  'barostat_no_adaptation' (the volume step never changes).
"""

import functools

import pytest

import npt

pytestmark = pytest.mark.slow

EXACT_P = 1e-3
CONTROL_P = 1e-6


#: the move schedule from a start step that is no multiple of the frequency: OpenMM counts the steps its
#: Context has taken, so from step 5 with frequency 4 it moves once in 7 steps (before the 4th), where a
#: schedule by step index would move twice (before steps 8 and 12)
SCHEDULE = dict(frequency=4, startStep=5, steps=7)
#: the adaptive volume step over 40 attempts (a move before every step): the step grows by 1.1 after each
#: 10 attempts with more than 3/4 accepted (~0.9 here), 4 times; the last move's volume change is compared
ADAPTATION = dict(frequency=1, startStep=5, steps=40, lastMove=True)


@functools.lru_cache(maxsize=None)
def serial(reps, scheme, anisotropic=False, protocol=None):
    return npt.serialSamples(reps, scheme=scheme, anisotropic=anisotropic, **PROTOCOLS[protocol])


PROTOCOLS = {None: {}, "schedule": SCHEDULE, "adaptation": ADAPTATION}


def reference(scheme, reps, anisotropic, protocol=None):
    """The serial samples a case is compared with: the first ``reps`` of the largest sample that a case of the
    same scheme, barostat and protocol needs (repetition r has its own seeds, so a prefix is the smaller sample)."""
    largest = max(case.values[2] for case in CASES if (case.values[0], case.values[3], case.values[4])
                  == (scheme, anisotropic, protocol))
    return serial(max(largest, reps), scheme, anisotropic, protocol)[:reps]


CASES = [
    pytest.param("LangevinMiddle", None, 10_000, False, None, id="middle-exact"),
    pytest.param("LangevinMiddle", "barostat_draft_energy", 1_500, False, None, id="middle-barostat_draft_energy"),
    pytest.param("LangevinMiddle", "barostat_no_log", 10_000, False, None, id="middle-barostat_no_log"),
    pytest.param("leapfrog", None, 3_000, False, None, id="leapfrog-exact"),
    pytest.param("leapfrog", "barostat_draft_energy", 1_500, False, None, id="leapfrog-barostat_draft_energy"),
    pytest.param("LangevinMiddle", None, 3_000, True, None, id="anisotropic-exact"),
    pytest.param("LangevinMiddle", "barostat_draft_energy", 1_500, True, None, id="anisotropic-barostat_draft_energy"),
    pytest.param("LangevinMiddle", None, 3_000, False, "schedule", id="schedule-exact"),
    pytest.param("LangevinMiddle", "barostat_schedule_by_index", 3_000, False, "schedule",
                 id="schedule-barostat_schedule_by_index"),
    pytest.param("LangevinMiddle", None, 2_000, False, "adaptation", id="adaptation-exact"),
    pytest.param("LangevinMiddle", "barostat_no_adaptation", 2_000, False, "adaptation",
                 id="adaptation-barostat_no_adaptation"),
]


@pytest.mark.parametrize("scheme, control, reps, anisotropic, protocol", CASES)
def test_npt_law_matches_openmm(scheme, control, reps, anisotropic, protocol):
    samples, statistics = npt.lsdSamples(reps, control=control, scheme=scheme, anisotropic=anisotropic,
                                         **PROTOCOLS[protocol])
    p = npt.twoSampleP(samples, reference(scheme, reps, anisotropic, protocol))
    if control is None:
        assert 0.2 < statistics.acceptanceRate < 0.95, statistics
        assert 0.3 < statistics.volumeMovesAccepted / statistics.volumeMoves < 0.98
        assert p > EXACT_P, f"LSD + barostat differs from OpenMM's serial NPT run, p = {p:.3g}"
    else:
        assert p < CONTROL_P, f"negative control {control} was not rejected, p = {p:.3g}"
