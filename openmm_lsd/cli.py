"""The ``openmm-lsd`` command line.

    openmm-lsd bench --case emulated --latency-ms 20 --verifiers 8 --window 8 --steps 400 --json out.json

``bench`` launches the MPI processes it needs itself (``mpiexec -n K+1``; K = 0
runs in one process).
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path


def _mpiexec():
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if found is None:
        raise SystemExit("openmm-lsd: no mpiexec found; install the MPI extra: pip install 'openmm-lsd[mpi]'")
    return found


def bench(args, passthrough):
    if args.verifiers < 0:
        raise SystemExit(f"openmm-lsd bench: --verifiers must be >= 0, got {args.verifiers}")
    if args.json:
        folder = Path(args.json).resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise SystemExit(f"openmm-lsd bench: cannot write {args.json}: {folder} is not a writable folder")
    command = "openmm-lsd bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    inner = [sys.executable, "-m", "openmm_lsd.bench", "--verifiers", str(args.verifiers), "--command", command]
    if args.json:
        inner += ["--json", args.json]
    inner += passthrough
    if args.verifiers > 0:
        try:
            import mpi4py  # noqa: F401
        except ImportError:
            raise SystemExit("openmm-lsd bench: --verifiers > 0 needs mpi4py: pip install 'openmm-lsd[mpi]'")
        inner = [_mpiexec(), "-n", str(args.verifiers + 1)] + inner
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    # One thread per process for threaded targets (tblite): ranks must not oversubscribe the cores.
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
          f"lag {result['lag']}, {result['steps']} steps")
    print(f"  serial {result['serial_seconds_per_step'] * 1e3:.2f} ms/step, LSD {result['lsd_seconds_per_step'] * 1e3:.2f} "
          f"ms/step: speedup {result['speedup']:.2f}x (bound {result['bound']:.2f}x, efficiency "
          f"{result['efficiency']:.2f})")
    print(f"  acceptance {result['acceptance']:.3f}, {result['steps_per_round']:.2f} steps per round; "
          f"T_t {result['target_seconds'] * 1e3:.2f} ms, T_d {result['draft_seconds'] * 1e3:.3f} ms, "
          f"controller {result['overhead_seconds'] * 1e3:.3f} ms per step")
    if args.json:
        print(f"  JSON: {args.json}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="openmm-lsd", description="Langevin Speculative Dynamics for OpenMM")
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("bench", help="serial target and LSD side by side (see python -m openmm_lsd.bench -h "
                                          "for the remaining options: --case, --latency-ms, --window, --lag, "
                                          "--steps, --friction, --seed, --platform)")
    b.add_argument("--verifiers", type=int, default=0, help="verifier ranks K (0: in-process)")
    b.add_argument("--json", default=None, help="write the figures to this file")
    args, passthrough = parser.parse_known_args(argv)
    if args.command == "bench":
        bench(args, passthrough)


if __name__ == "__main__":
    main()
