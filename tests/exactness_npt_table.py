"""Print the constant-pressure p-values of docs/exactness.md: every case of test_exactness_npt.py.

    python tests/exactness_npt_table.py        (about 10 minutes on one core)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import npt  # noqa: E402
from test_exactness_npt import CASES, PROTOCOLS, reference  # noqa: E402

print("| barostat | protocol | scheme | control | R | step acceptance | volume-move acceptance | p |")
print("|---|---|---|---|---|---|---|---|")
for case in CASES:
    scheme, control, reps, anisotropic, protocol = case.values
    samples, s = npt.lsdSamples(reps, control=control, scheme=scheme, anisotropic=anisotropic, **PROTOCOLS[protocol])
    p = npt.twoSampleP(samples, reference(scheme, reps, anisotropic, protocol))
    print(f"| {'anisotropic' if anisotropic else 'isotropic'} | {protocol or 'default'} | {scheme} | "
          f"{control or 'exact'} | {reps} | "
          f"{s.acceptanceRate:.3f} | {s.volumeMovesAccepted / s.volumeMoves:.3f} | {p:.2g} |", flush=True)
