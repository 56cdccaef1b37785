"""Print the constant-pressure p-values of docs/exactness.md: every case of test_exactness_npt.py.

    python tests/exactness_npt_table.py        (about 6 minutes on one core)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import npt  # noqa: E402
from test_exactness_npt import CASES, serial  # noqa: E402

print("| scheme | control | R | step acceptance | volume-move acceptance | p |")
print("|---|---|---|---|---|---|")
for case in CASES:
    scheme, control, reps = case.values
    reference = serial(10_000, scheme)[:reps] if scheme == "LangevinMiddle" else serial(reps, scheme)
    samples, s = npt.lsdSamples(reps, control=control, scheme=scheme)
    print(f"| {scheme} | {control or 'exact'} | {reps} | {s.acceptanceRate:.3f} | "
          f"{s.volumeMovesAccepted / s.volumeMoves:.3f} | {npt.twoSampleP(samples, reference):.2g} |", flush=True)
