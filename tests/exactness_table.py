"""Print the p-value table of docs/exactness.md: every configuration and control of test_exactness.py.

    python tests/exactness_table.py        (about 8 minutes on 2 cores)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from exactness import lsd_samples, serial_samples, two_sample_p  # noqa: E402
from test_exactness import CONFIGS, CONTROLS  # noqa: E402

print("| configuration | R | acceptance | exact | " + " | ".join(CONTROLS) + " |")
for name, config in CONFIGS.items():
    c = dict(config)
    reps, scheme, correction, lag = c.pop("reps"), c.pop("scheme"), c.pop("correction"), c.pop("lag", None)
    virtualSite = c.get("virtualSite", False)
    serial = serial_samples(c["constraint"], c["cmm"], "leapfrog" if scheme == "leapfrog" else "LangevinMiddle", reps,
                            virtualSite=virtualSite)
    row = []
    for control in (None,) + CONTROLS:
        if control == "draft_velocity" and scheme == "leapfrog":
            row.append("void")
            continue
        lsd, statistics = lsd_samples(c["constraint"], c["cmm"], scheme, reps, control=control,
                                      correction=correction, lag=lag, virtualSite=virtualSite)
        if control is None:
            acceptance = statistics.acceptanceRate
        row.append(f"{two_sample_p(lsd, serial):.2g}")
    print(f"| {name} | {reps} | {acceptance:.3f} | " + " | ".join(row) + " |", flush=True)
