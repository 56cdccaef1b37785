"""Print the p-value table of docs/exactness.md: every configuration, exact variant and control of
test_exactness.py.

    python tests/exactness_table.py        (about 15 minutes on 2 cores)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from exactness import two_sample_p  # noqa: E402
from test_exactness import CONFIGS, controlsOf, samples  # noqa: E402

print("| configuration | R | acceptance | exact | controls (p) |")
print("|---|---|---|---|---|")
for name, config in CONFIGS.items():
    exact = []
    for variant in (None,) + tuple(config.get("variants", ())):
        lsd, statistics, serial = samples(name, variant)
        if variant is None:
            acceptance = statistics.acceptanceRate
        exact.append(f"{two_sample_p(lsd, serial):.2g}" + (f" ({variant})" if variant else ""))
    controls = []
    for control in controlsOf(config):
        lsd, _, reference = samples(name, control)
        size = f" (R {len(lsd)})" if len(lsd) != config["reps"] else ""
        controls.append(f"{control}{size} {two_sample_p(lsd, reference):.2g}")
    print(f"| {name} | {config['reps']} | {acceptance:.3f} | {'; '.join(exact)} | {'; '.join(controls)} |",
          flush=True)
