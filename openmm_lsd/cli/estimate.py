"""``openmm-lsd estimate``: acceptance by window position and speedups predicted from a short sample."""

import json
from pathlib import Path

from .common import UsageError, buildSystem, checkNumbers, initialVelocities, makeSimulation, settings, writeJSON


# ---- estimate ------------------------------------------------------------------------------------

def estimate(args):
    checkNumbers(args)
    from ..analysis import estimate as predict

    example = buildSystem(args)
    velocities = initialVelocities(example, args)
    result = predict(lambda: makeSimulation(args, example, verifier="inprocess"),
                     example.positions, velocities, steps=args.steps)
    result["settings"] = settings(args, example)
    alpha = result["predicted_acceptance_by_position"]
    print(f"openmm-lsd estimate: {example.description}; {result['sampled_steps']} sampled steps")
    print("  predicted acceptance by window position: " + " ".join(f"{a:.2f}" for a in alpha))
    print(f"  predicted steps per round {result['predicted_steps_per_round']:.2f}; T_t {result['target_seconds'] * 1e3:.2f}"
          f" ms, T_d {result['draft_seconds'] * 1e3:.3f} ms")
    print("  predicted speedup bound: " + ", ".join(f"K={K}: {v:.2f}x" for K, v in result["predicted_speedup"].items()))
    print("  learning curve (mean acceptance probability by part of the sample): "
          + " ".join(f"{p['expected_acceptance']:.3f}" for p in result["predicted_acceptance_curve"]))
    if "predicted_steps_per_round_second_half" in result:
        print("  from the sample's second half (the fit with data): acceptance by position "
              + " ".join(f"{a:.2f}" for a in result["predicted_acceptance_by_position_second_half"])
              + f"; steps per round {result['predicted_steps_per_round_second_half']:.2f}; speedup bound "
              + ", ".join(f"K={K}: {v:.2f}x" for K, v in result["predicted_speedup_second_half"].items()))
    if args.compare:
        try:
            measured = json.loads(Path(args.compare).read_text())
            steps = measured["steps_per_round"]
            byPosition = measured["statistics"]["acceptanceByPosition"]
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"--compare needs the summary.json of an openmm-lsd run: {exc}") from None
        error = result["predicted_steps_per_round"] / steps - 1
        result["measured_steps_per_round"] = steps
        result["measured_acceptance_by_position"] = byPosition
        result["relative_error_steps_per_round"] = error
        print(f"  measured ({args.compare}): {steps:.2f} steps per round; prediction off by {100 * error:+.1f}%")
        print("  measured acceptance by window position:  " + " ".join(f"{a:.2f}" for a in byPosition))
    if args.json:
        writeJSON(args.json, result)
    return result
