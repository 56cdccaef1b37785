"""``openmm-lsd bench``: the serial target and LSD side by side, each in a process of its own
(:mod:`openmm_lsd.bench` is that process), figures as JSON."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from . import findMpiexec


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
        inner = [findMpiexec(), "-n", str(args.verifiers + 1)] + inner
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
    if result.get("report_interval"):
        print(f"  with a StateDataReporter(potentialEnergy=True) every {result['report_interval']} steps: "
              f"{result['lsd_seconds_per_step_reporting'] * 1e3:.2f} against "
              f"{result['lsd_seconds_per_step_quiet'] * 1e3:.2f} ms/step without "
              f"({100 * result['reporting_slowdown']:+.1f}%, medians of alternating blocks)")
    if args.json:
        print(f"  JSON: {args.json}")
