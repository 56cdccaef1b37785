"""The ``openmm-lsd`` command line.

    openmm-lsd run                      # the offline default: 8 waters, GFN2-xTB target, TIP3P draft
    openmm-lsd run --system alanine-dipeptide --steps 5000 --output ala
    openmm-lsd run --pdb input.pdb --target ani2x --verifiers 4
    openmm-lsd estimate --system water --steps 200
    openmm-lsd validate --system water --output validation
    openmm-lsd bench --case emulated --latency-ms 20 --verifiers 8 --window 8 --steps 400 --json out.json

``--verifiers K`` launches ``mpiexec -n K+1`` itself (K = 0: one process);
``run`` and ``validate`` also work when started under ``mpiexec`` directly.

One argparse tree here; one module per command: :mod:`.run`, :mod:`.estimate`, :mod:`.validate`,
:mod:`.bench` (which starts :mod:`openmm_lsd.bench`, the benchmark process), and :mod:`.common`,
what they share.
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..corrections import CORRECTIONS
from ..integrators import SCHEME_NAMES


def findMpiexec():
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if found is None:
        raise SystemExit("openmm-lsd: no mpiexec found; install the MPI extra: pip install 'openmm-lsd[mpi]'")
    return found


def _relaunch(argv, verifiers):
    """Run ``openmm-lsd ARGV`` again under ``mpiexec -n verifiers+1``; return its exit code."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        raise SystemExit("openmm-lsd: --verifiers > 0 needs mpi4py: pip install 'openmm-lsd[mpi]'")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    env.setdefault("OMP_NUM_THREADS", "1")
    command = [findMpiexec(), "-n", str(verifiers + 1), sys.executable, "-m", "openmm_lsd.cli"] + argv
    return subprocess.run(command, env=env).returncode


def _window(text):
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


def _addRunOptions(p, steps):
    from ..testsystems import EXAMPLES

    p.add_argument("--system", choices=sorted(EXAMPLES), default=None,
                   help="a named example system (default: water)")
    p.add_argument("--pdb", default=None, help="a PDB file instead of a named system")
    p.add_argument("--target", default="gfn2-xtb",
                   help="gfn2-xtb (default), gfn1-xtb, a SevenNet model shipped with sevenn (sevennet-0, "
                        "sevennet-l3i5, sevennet-mf-0; offline, for metals and materials), or an openmm-ml potential "
                        "(ani2x, mace-off23-small, aimnet2, ...; their weights download at run time)")
    p.add_argument("--fidelity", default=None,
                   help="with --target sevennet-mf-0: the fidelity (PBE, the default, or R2SCAN)")
    p.add_argument("--forcefield", nargs="+", default=["amber14-all.xml", "amber14/tip3p.xml"],
                   help="OpenMM force field files for the draft (with --pdb)")
    p.add_argument("--ml-atoms", choices=("all", "solute"), default="all",
                   help="with --pdb: the target on all atoms, or ML/MM with the solute as the target region")
    p.add_argument("--waters", type=int, default=8, help="waters in the 'water' system (1-27)")
    p.add_argument("--box-edge", type=float, default=1.0,
                   help="nm, edge of the 'water-box' system's cubic box (default 1.0: 32 waters)")
    p.add_argument("--pressure", type=float, default=1.0, help="bar, the 'water-box' barostat's pressure (default 1)")
    p.add_argument("--barostat-frequency", type=int, default=25,
                   help="steps between the 'water-box' barostat's volume moves (default 25, OpenMM's)")
    if steps is not None:
        p.add_argument("--steps", type=int, default=steps, help=f"steps (default {steps})")
    p.add_argument("--window", type=_window, default=8,
                   help="steps drafted ahead (default 8), or 'auto' to choose it during the run")
    p.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    p.add_argument("--friction", type=float, default=1.0, help="1/ps (default 1)")
    p.add_argument("--timestep", type=float, default=2.0, help="fs (default 2)")
    p.add_argument("--scheme", choices=SCHEME_NAMES, default="LangevinMiddle")
    p.add_argument("--correction", choices=CORRECTIONS,
                   default="extrapolate-quadratic", help="draft correction (default extrapolate-quadratic)")
    p.add_argument("--lag", type=int, default=None, help="offset correction lag (default 8)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--platform", default=None, help="OpenMM platform (default: OpenMM's fastest)")
    p.add_argument("--verifier-timeout", type=float, default=600.0,
                   help="seconds without an answer before a verifier rank is declared dead or hung (default 600)")


def _run(args):
    from .run import run

    return run(args)


def _estimate(args):
    from .estimate import estimate

    return estimate(args)


def _validate(args):
    from .validate import validate

    return validate(args)


#: one module per command (imported when used: ``import openmm_lsd.cli`` stays light)
_COMMANDS = {"run": _run, "estimate": _estimate, "validate": _validate}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="openmm-lsd", description="Langevin Speculative Dynamics for OpenMM")
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("bench", help="serial target and LSD side by side, figures as JSON")
    from ..bench import addOptions

    addOptions(b)
    r = commands.add_parser("run", help="run LSD on a system and write a trajectory, logs and a summary")
    _addRunOptions(r, 2000)
    r.add_argument("--output", default="lsd-run", help="output folder (default lsd-run)")
    r.add_argument("--report-interval", type=int, default=10, help="steps between frames and log lines")
    r.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in --output")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--checkpoint-interval", type=int, default=500,
                   help="steps between checkpoints in OUTPUT/checkpoint.lsd (default 500; 0: none)")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in --output from its checkpoint (the same command otherwise)")
    r.add_argument("--verifiers", type=int, default=0, help="verifier ranks K: launches mpiexec -n K+1")
    r.add_argument("--batched", action="store_true",
                   help="SevenNet targets: evaluate the window's drafted positions in one model call (one GPU, "
                        "many configurations) instead of one call each")
    e = commands.add_parser("estimate", help="predict acceptance by window position and speedups without LSD")
    _addRunOptions(e, 400)
    e.add_argument("--compare", default=None, help="summary.json of a measured run to compare with")
    e.add_argument("--json", default=None, help="write the prediction to this file")
    v = commands.add_parser("validate", help="LSD and the serial target side by side, compared statistically")
    _addRunOptions(v, None)
    v.add_argument("--replicas", type=int, default=40, help="independent replicas per method (default 40)")
    v.add_argument("--replica-steps", type=int, default=250, help="steps per replica (default 250)")
    v.add_argument("--control", choices=("accept_always", "barostat_draft_energy"), default=None,
                   help=argparse.SUPPRESS)
    v.add_argument("--equilibrate", type=int, default=500, help="serial steps before both runs (default 500)")
    v.add_argument("--output", default="lsd-validate", help="output folder (default lsd-validate)")
    v.add_argument("--report-interval", type=int, default=10, help="steps between frames (default 10)")
    v.add_argument("--alpha", type=float, default=0.01, help="family-wise significance level (default 0.01)")
    v.add_argument("--overwrite", action="store_true", help="replace the files of an earlier validation")
    v.add_argument("--verifiers", type=int, default=0, help="verifier ranks K for the LSD run")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.command == "bench":
        from .bench import bench

        bench(args, argv[argv.index("bench") + 1:])
        return
    from ..verifiers.mpi import launchedUnderMPI
    from .common import RunFailed, UsageError

    verifiers = getattr(args, "verifiers", 0)
    if verifiers < 0:
        raise SystemExit(f"openmm-lsd {args.command}: --verifiers must be >= 0, got {verifiers}")
    if verifiers > 0 and getattr(args, "batched", False):
        raise SystemExit(f"openmm-lsd {args.command}: --batched evaluates every drafted position in this process; "
                         f"it does not go with --verifiers")
    if verifiers > 0 and not launchedUnderMPI():
        stripped = []
        skip = False
        for a in argv:
            if skip:
                skip = False
                continue
            if a == "--verifiers":
                skip = True
                continue
            if a.startswith("--verifiers="):
                continue
            stripped.append(a)
        raise SystemExit(_relaunch(stripped, verifiers))
    args.system_given = args.system is not None
    if args.system is None:
        args.system = "water"
    command = _COMMANDS[args.command]
    try:
        result = command(args)
    except UsageError as exc:
        raise SystemExit(f"openmm-lsd {args.command}: {exc}")
    except RunFailed as exc:
        sys.stderr.write(f"openmm-lsd {args.command}: {exc}\n")
        raise SystemExit(3)
    if args.command == "validate" and result["verdict"] != "AGREE":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
