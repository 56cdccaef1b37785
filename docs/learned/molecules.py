"""`openmm-lsd run ARGS` with the learned correction's model options: the CLI's run, the same files, with
``--correction learned`` built as LearnedCorrection(lag, basis=BASIS) (the CLI has no flag for the basis).

    python docs/learned/molecules.py BASIS -- RUN_ARGS...
    python docs/learned/molecules.py bonded=0 -- --system alanine-dipeptide-water --timestep 1 --friction 10 \\
        --correction learned --steps 400 --output OUT --no-progress

BASIS: comma-separated NAME=VALUE of learned.PairEmbeddingModel (bonded=0|1 here).
"""

import copy
import sys

import openmm_lsd.cli.run as runCommand
from openmm_lsd.cli import main
from openmm_lsd.corrections import DEFAULT_LAG, LearnedCorrection

split = sys.argv.index("--")
basis = {k: bool(int(v)) for k, v in (a.split("=", 1) for a in sys.argv[1:split] for a in a.split(",") if a)}
original = runCommand.makeSimulation


def makeSimulation(args, example, *rest, **options):
    if args.correction == "learned":  # a copy: the summary still names the correction 'learned'
        args = copy.copy(args)
        args.correction = LearnedCorrection(DEFAULT_LAG if args.lag is None else args.lag, basis=basis)
    return original(args, example, *rest, **options)


runCommand.makeSimulation = makeSimulation
main(["run"] + sys.argv[split + 1:])
