"""Print docs/acceptance.md's table from the runs' summary.json and estimate JSON files.

    python docs/acceptance_table.py DIR      # DIR/<id>.summary.json and DIR/<id>.estimate.json

Each row's <id> is SYSTEM-SCHEME-CORRECTION; the commands are in docs/acceptance.md.
"""

import json
import math
import sys
from pathlib import Path

SYSTEMS = {"water-g1": "water, 1/ps", "water-g10": "water, 10/ps", "ala": "ala2 vacuum", "alawater": "ala2 ML/MM"}
CORRECTIONS = ("none", "offset", "extrapolate", "extrapolate-quadratic", "refit")
SCHEMES = ("LangevinMiddle", "leapfrog")


def bound(alphas, k, K, Tt, Td):
    E, survive = 0.0, 1.0
    for a in alphas[:k]:
        E += survive
        survive *= a
    return E * Tt / (Tt * math.ceil(k / K) + k * Td)


def main(folder):
    folder = Path(folder)
    print("| system | scheme | correction | acceptance by window position (measured) | steps/round measured |"
          " predicted | error | bound K=8, predicted | bound K=8, measured alpha |")
    print("|---|---|---|---|---|---|---|---|---|")
    for system, label in SYSTEMS.items():
        for scheme in SCHEMES:
            for correction in CORRECTIONS:
                name = f"{system}-{scheme}-{correction}"
                summaryPath, estimatePath = folder / f"{name}.summary.json", folder / f"{name}.estimate.json"
                if not summaryPath.exists() or not estimatePath.exists():
                    continue
                summary, estimate = json.loads(summaryPath.read_text()), json.loads(estimatePath.read_text())
                measured = summary["statistics"]["acceptanceByPosition"]
                shown = " ".join("-" if a is None or (isinstance(a, float) and math.isnan(a)) else f"{a:.2f}"
                                 for a in measured)
                filled = [a if a is not None and not math.isnan(a) else 0.0 for a in measured]
                Tt, Td = estimate["target_seconds"], estimate["draft_seconds"]
                print(f"| {label} | {scheme} | {correction} | {shown} | {summary['steps_per_round']:.2f} | "
                      f"{estimate['predicted_steps_per_round']:.2f} | "
                      f"{100 * estimate['relative_error_steps_per_round']:+.0f}% | "
                      f"{estimate['predicted_speedup']['8']:.2f} | {bound(filled, 8, 8, Tt, Td):.2f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/acceptance")
