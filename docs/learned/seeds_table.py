"""The seed study of the learned correction on Cu13 at 1/ps (window and lag 32, steps 500-1500): per variant, the
acceptance of each seed, the mean and its standard error over seeds, and the mean exact acceptance probability
where the run recorded it.

    python docs/learned/seeds_table.py [FOLDER ...]        (default docs/learned/seeds-g1 and seeds-g1-3body)

The last column is each variant's mean difference from the defaults over the seeds both have, with its standard
error (the runs of one seed share their start and random numbers up to the first step that differs).

Each JSON there is one run of ``docs/learned/copper_acceptance.py learned 1 32 1500 seed=N [OPTION=VALUE ...]``,
named ``cu13-learned-g1-w32-VARIANT-sN.json``.
"""

import collections
import glob
import json
import os
import sys

import numpy as np

here = os.path.dirname(__file__)
folders = sys.argv[1:] or [os.path.join(here, "seeds-g1"), os.path.join(here, "seeds-g1-3body")]
runs = collections.defaultdict(dict)
for path in sorted(p for folder in folders for p in glob.glob(os.path.join(folder, "*.json"))):
    variant, seed = os.path.basename(path)[len("cu13-learned-g1-w32-"):-len(".json")].rsplit("-s", 1)
    runs[variant][int(seed)] = json.load(open(path))
print("| variant | options | seeds | acceptance by seed | mean +- s.e. | mean exact probability | steps/round "
      "| minus the defaults, same seeds |")
print("|---|---|---|---|---|---|---|---|")


def meanAndError(values):
    values = np.asarray(values)
    error = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{values.mean():.4f} +- {error:.4f}"


for variant, bySeed in sorted(runs.items(), key=lambda item: (-len(item[1]), item[0])):
    seeds = sorted(bySeed)
    a = [bySeed[s]["acceptance"] for s in seeds]
    expected = [bySeed[s]["expected_acceptance"] for s in seeds if "expected_acceptance" in bySeed[s]]
    # (seed 1 of the defaults named its default response=16 explicitly)
    options = " ".join(f"{k}={v}" for k, v in bySeed[seeds[0]]["options"].items()
                       if (k, v) != ("response", "16")) or "defaults"
    common = [s for s in seeds if s in runs.get("default", {})]
    paired = ("-" if variant == "default" or not common else
              meanAndError([bySeed[s]["acceptance"] - runs["default"][s]["acceptance"] for s in common])
              + f" ({len(common)})")
    print(f"| {variant} | {options} | {','.join(map(str, seeds))} | {' '.join(f'{v:.3f}' for v in a)} | "
          f"{meanAndError(a)} | {f'{np.mean(expected):.4f} ({len(expected)} runs)' if expected else '-'} | "
          f"{np.mean([bySeed[s]['steps_per_round'] for s in seeds]):.2f} | {paired} |")
