"""The ``openmm-lsd`` command line.

    openmm-lsd run                      # the offline default: 8 waters, GFN2-xTB target, TIP3P draft
    openmm-lsd run --system alanine-dipeptide --steps 5000 --output ala
    openmm-lsd run --pdb input.pdb --target ani2x --verifiers 4
    openmm-lsd estimate --system water --steps 200
    openmm-lsd validate --system water --output validation
    openmm-lsd bench --case emulated --latency-ms 20 --verifiers 8 --window 8 --steps 400 --json out.json

``--verifiers K`` launches ``mpiexec -n K+1`` itself (K = 0: one process);
``run`` and ``validate`` also work when started under ``mpiexec`` directly.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from .corrections import CORRECTIONS
from .integrators import SCHEME_NAMES


def _mpiexec():
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
    command = [_mpiexec(), "-n", str(verifiers + 1), sys.executable, "-m", "openmm_lsd.cli"] + argv
    return subprocess.run(command, env=env).returncode


def _window(text):
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


def _addRunOptions(p, steps):
    from .testsystems import EXAMPLES

    p.add_argument("--system", choices=sorted(EXAMPLES), default=None,
                   help="a named example system (default: water)")
    p.add_argument("--pdb", default=None, help="a PDB file instead of a named system")
    p.add_argument("--target", default="gfn2-xtb",
                   help="gfn2-xtb (default), gfn1-xtb, or an openmm-ml potential (ani2x, mace-off23-small, "
                        "aimnet2, ...; their weights download at run time)")
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


def bench(args, benchArgv):
    if args.verifiers < 0:
        raise SystemExit(f"openmm-lsd bench: --verifiers must be >= 0, got {args.verifiers}")
    if args.json:
        folder = Path(args.json).resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise SystemExit(f"openmm-lsd bench: cannot write {args.json}: {folder} is not a writable folder")
    command = "openmm-lsd bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    inner = [sys.executable, "-m", "openmm_lsd.bench", *benchArgv, "--command", command]
    if args.verifiers > 0:
        try:
            import mpi4py  # noqa: F401
        except ImportError:
            raise SystemExit("openmm-lsd bench: --verifiers > 0 needs mpi4py: pip install 'openmm-lsd[mpi]'")
        inner = [_mpiexec(), "-n", str(args.verifiers + 1)] + inner
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    if args.verifiers > 0 and args.case not in ("overhead", "batched"):
        # The serial baseline in its own process with every core (a threaded target such as tblite uses
        # them all), then LSD with one thread per rank so that the ranks share the cores.
        # The faster of one thread and all cores: small targets lose to threading overhead.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        choices = [env["OPENMM_LSD_SERIAL_THREADS"]] if "OPENMM_LSD_SERIAL_THREADS" in env else \
            sorted({str(cores), "1"}, key=int, reverse=True)
        timings = {}
        for threads in choices:
            baseline = subprocess.run(inner[inner.index(sys.executable):] + ["--serial-only"],
                                      env=dict(env, OMP_NUM_THREADS=threads), stdout=subprocess.PIPE, text=True)
            if baseline.returncode != 0:
                sys.stdout.write(baseline.stdout)
                raise SystemExit(f"openmm-lsd bench: the serial baseline failed (exit code {baseline.returncode})")
            timings[threads] = json.loads(baseline.stdout[baseline.stdout.find("{"):])["serial_seconds_per_step"]
        best = min(timings, key=timings.get)
        inner += ["--serial-seconds", repr(timings[best])]
        env["OPENMM_LSD_SERIAL_THREADS"] = best
        env["OPENMM_LSD_SERIAL_TIMINGS"] = json.dumps(timings)
    # One thread per process for threaded targets (tblite): ranks must not oversubscribe the cores.
    # A single process (K = 0: in-process runs, the batched and overhead cases) keeps every core.
    if args.verifiers > 0:
        env.setdefault("OMP_NUM_THREADS", "1")
    completed = subprocess.run(inner, env=env, stdout=subprocess.PIPE, text=True)
    if completed.returncode != 0:
        sys.stdout.write(completed.stdout)
        raise SystemExit(f"openmm-lsd bench: the benchmark failed (exit code {completed.returncode})")
    start = completed.stdout.find("{")
    result = json.loads(completed.stdout[start:])
    if result["case"] == "batched":
        print(f"case batched: torch pair potential, {result['particles']} particles, width {result['hidden']}, "
              f"{result['torch_threads']} threads: one call on {result['batch']} configurations "
              f"{result['batch_seconds'] * 1e3:.2f} ms, {result['batch']} calls {result['separate_seconds'] * 1e3:.2f} ms, "
              f"throughput ratio {result['throughput_ratio']:.2f}x (medians of {result['repeats']})")
        return
    if result["case"] == "overhead":
        print(f"case overhead: {result['atoms']} atoms, K = {result['verifiers']} verifier ranks, {result['steps']} steps, "
              f"correction {result['draftCorrection']}: "
              f"per drafted step, draft integrator {result['draft_integrator_seconds'] * 1e3:.2f} ms, engine work "
              f"around it {result['around_draft_seconds'] * 1e3:.2f} ms, controller "
              f"{result['controller_seconds_per_verified_step'] * 1e3:.2f} ms per verified step: overhead "
              f"{result['overhead_seconds_per_drafted_step'] * 1e3:.2f} ms = "
              f"{100 * result['overhead_fraction_of_20ms_target']:.1f}% of a 20 ms target call")
        return
    print(f"case {result['case']}: K = {result['verifiers']} verifiers, window {result['window']}, "
          f"lag {result['lag']}, correction {result.get('draftCorrection')}, {result['steps']} steps")
    print(f"  serial {result['serial_seconds_per_step'] * 1e3:.2f} ms/step, LSD {result['lsd_seconds_per_step'] * 1e3:.2f} "
          f"ms/step: speedup {result['speedup']:.2f}x (bound {result['bound']:.2f}x, efficiency "
          f"{result['efficiency']:.2f})")
    print(f"  acceptance {result['acceptance']:.3f}, {result['steps_per_round']:.2f} steps per round; "
          f"T_t {result['target_seconds'] * 1e3:.2f} ms, T_d {result['draft_seconds'] * 1e3:.3f} ms, "
          f"controller {result['overhead_seconds'] * 1e3:.3f} ms per step")
    print(f"  steps per target latency {result['steps_per_target_latency']:.2f} (lag cap E_L "
          f"{result['throughput_cap']:.2f})")
    if args.json:
        print(f"  JSON: {args.json}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="openmm-lsd", description="Langevin Speculative Dynamics for OpenMM")
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("bench", help="serial target and LSD side by side, figures as JSON")
    from .bench import addOptions

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
        bench(args, argv[argv.index("bench") + 1:])
        return
    from . import commands as work
    from .verifiers.mpi import launchedUnderMPI

    verifiers = getattr(args, "verifiers", 0)
    if verifiers < 0:
        raise SystemExit(f"openmm-lsd {args.command}: --verifiers must be >= 0, got {verifiers}")
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
    try:
        result = {"run": work.run, "estimate": work.estimate, "validate": work.validate}[args.command](args)
    except work.UsageError as exc:
        raise SystemExit(f"openmm-lsd {args.command}: {exc}")
    except work.RunFailed as exc:
        sys.stderr.write(f"openmm-lsd {args.command}: {exc}\n")
        raise SystemExit(3)
    if args.command == "validate" and result["verdict"] != "AGREE":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
